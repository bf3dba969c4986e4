"""The "nothing relevant" judgement: the cosine floor, and the question's words the window says."""

from __future__ import annotations

import pytest

from chaffee_assets.retrieval.relevance import WORDS_MARGIN, WORDS_SHARE, is_weak, matched_share
from chaffee_assets.search import nothing_relevant, search
from chaffee_assets.warehouse import connect

WEIGHTS = {"much": 1.9, "salt": 1.8, "keto": 3.7}


def test_the_matched_share_weighs_each_question_word_by_its_rarity_once():
    assert matched_share(["salt", "keto", "salt"], WEIGHTS) == pytest.approx(5.5 / 7.4)
    assert matched_share([], WEIGHTS) == 0.0
    assert matched_share([], {}) is None  # emoji or stop words only: nothing to match


def test_a_hit_above_the_floor_is_related_whatever_words_it_says():
    assert is_weak(0.5, 0.0, 0.35) is False
    assert is_weak(0.5, None, 0.35) is False


def test_below_the_floor_only_a_window_saying_most_of_the_question_is_related():
    assert is_weak(0.335, WORDS_SHARE, 0.35) is False
    assert is_weak(0.335, WORDS_SHARE - 0.01, 0.35) is True
    assert is_weak(0.35 - WORDS_MARGIN - 0.01, 1.0, 0.35) is True  # words alone never suffice
    assert is_weak(0.2, None, 0.35) is True


def test_without_a_cosine_or_a_measured_floor_nothing_is_judged():
    assert is_weak(None, 1.0, 0.35) is None
    assert is_weak(0.9, 1.0, None) is None


@pytest.mark.parametrize(
    "question", ["how much salt on keto", "why do I get cramps at night", "half a teaspoon of salt"]
)
def test_the_sample_library_s_answers_come_back_related(sample_warehouse_url: str, question: str):
    with connect(sample_warehouse_url, autocommit=True) as conn:
        hits = search(question, 5, "hybrid", conn=conn)
    assert not nothing_relevant(hits)
    assert hits[0].video_id == "smplKetoWk1" and hits[0].weak is False


@pytest.mark.parametrize(
    "query",
    ["asdf qwer zxcv", "🥩🥩🥩", "how to file my taxes online", "quelle est la capitale de la France"],
)
def test_nonsense_other_topics_and_other_languages_come_back_unrelated(sample_warehouse_url: str, query: str):
    with connect(sample_warehouse_url, autocommit=True) as conn:
        hits = search(query, 5, "hybrid", conn=conn)
    assert hits and nothing_relevant(hits)
