"""Recall@k and MRR@k on hand-checked cases, the questions loader, and `chaffee eval` end to end."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass

import pytest

from chaffee_assets.retrieval.evaluation import (
    Question,
    QuestionsError,
    first_relevant_rank,
    is_relevant,
    load_questions,
    mrr_at,
    recall_at,
    score,
)


@dataclass
class H:
    video_id: str
    start_s: float
    end_s: float


Q = Question("what about sleep?", "vid", 100.0, 160.0)


@pytest.mark.parametrize(
    ("hit", "relevant"),
    [
        (H("vid", 90, 110), True),  # overlaps the start
        (H("vid", 150, 200), True),  # overlaps the end
        (H("vid", 160, 200), True),  # touches the closed range
        (H("vid", 0, 99.9), False),
        (H("other", 100, 160), False),  # right time, wrong video
    ],
)
def test_a_hit_is_relevant_when_same_video_and_ranges_overlap(hit, relevant):
    assert is_relevant(hit, Q) is relevant


def test_rank_is_that_of_the_first_relevant_hit():
    hits = [H("other", 100, 160), H("vid", 0, 50), H("vid", 120, 130), H("vid", 100, 110)]
    assert first_relevant_rank(hits, Q) == 3
    assert first_relevant_rank(hits[:2], Q) is None


def test_metrics_on_a_hand_checked_case():
    ranks = [1, 3, 7, None]  # four questions
    assert recall_at(ranks, 5) == 0.5  # ranks 1 and 3
    assert recall_at(ranks, 10) == 0.75
    assert mrr_at(ranks, 10) == pytest.approx((1 + 1 / 3 + 1 / 7) / 4)
    assert mrr_at(ranks, 5) == pytest.approx((1 + 1 / 3) / 4)
    assert score(ranks) == {
        "recall@5": 0.5,
        "recall@10": 0.75,
        "mrr@10": round((1 + 1 / 3 + 1 / 7) / 4, 4),
        "n": 4,
    }


def test_questions_load_and_bad_lines_name_file_and_line(tmp_path):
    good = tmp_path / "q.jsonl"
    good.write_text(json.dumps({"question": "x?", "video_id": "-ab", "start_s": 1, "end_s": 2}) + "\n\n")
    assert load_questions(good) == [Question("x?", "-ab", 1.0, 2.0)]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(good.read_text() + '{"question": "y?"}\n')
    with pytest.raises(QuestionsError, match=r"bad\.jsonl:3"):
        load_questions(bad)


def test_eval_set_questions_all_load():
    from chaffee_assets_tests.conftest import shared_path

    assert len(load_questions(shared_path("eval", "huberman_dev", "questions.jsonl"))) == 581


# `chaffee eval` on a warehouse written by hand, in text mode (no model needed): the first
# question's answer ranks 1st, the second's 2nd, the third matches nothing.
SEGMENTS = [
    ("v1", 0.0, 30.0, "ketogenic diets lower insulin and triglycerides"),
    ("v1", 30.0, 60.0, "red meat and organ meats carry vitamin B12"),
    ("v2", 0.0, 30.0, "sunlight in the morning sets the circadian clock and sleep"),
    ("v2", 30.0, 60.0, "insulin resistance improves with fasting and carnivore diets"),
]
QUESTIONS = [
    {"question": "circadian clock sunlight", "video_id": "v2", "start_s": 10, "end_s": 20},
    {"question": "insulin", "video_id": "v2", "start_s": 40, "end_s": 50},
    {"question": "photosynthesis", "video_id": "v1", "start_s": 0, "end_s": 60},
]


def _write_warehouse(url: str) -> None:
    from chaffee_assets.retrieval.segmenter import Segment
    from chaffee_assets.retrieval.store import replace_segments
    from chaffee_assets.warehouse import connect

    with connect(url) as conn:
        for vid in ("v1", "v2"):
            conn.execute(
                "INSERT INTO videos (video_id, source, title, published_at, url) "
                "VALUES (%s, 'library', %s, '2022-01-01', 'x')",
                (vid, f"Talk {vid}"),
            )
            tid = conn.execute(
                "INSERT INTO transcripts (video_id, version, source, cues) "
                "VALUES (%s, 1, 'library_file', '[]') RETURNING transcript_id",
                (vid,),
            ).fetchone()[0]
            conn.commit()
            rows = [s for s in SEGMENTS if s[0] == vid]
            replace_segments(conn, vid, tid, [Segment(i, s, e, t) for i, (_, s, e, t) in enumerate(rows)])


def _eval_parser() -> argparse.ArgumentParser:
    from chaffee_assets.cli import eval_cmd

    parser = argparse.ArgumentParser(prog="chaffee")
    eval_cmd.register(parser.add_subparsers(dest="command", required=True))
    return parser


def test_chaffee_eval_reports_hand_checked_metrics(warehouse_url, tmp_path, capsys):
    _write_warehouse(warehouse_url)
    questions = tmp_path / "q.jsonl"
    questions.write_text("\n".join(json.dumps(q) for q in QUESTIONS))
    args = _eval_parser().parse_args(["eval", str(questions), "--mode", "text", "--json"])
    assert args.handler(args) == 0
    out = json.loads(capsys.readouterr().out)
    # ranks: 1, 2, none -> recall@5 = 2/3, mrr@10 = (1 + 1/2) / 3
    # landings: the first's window (0-30 s, 10 words, 3 s a word) says "circadian clock" at 15-18 s
    # and "sunlight" at 0 s: its link steps about 2 s back from "circadian" to 15 s, inside 10-20;
    # the second's says "insulin" first, so it opens at its window's 30 s, 10 s before 40-50.
    assert out == {
        "text": {
            "recall@5": 0.6667,
            "recall@10": 0.6667,
            "mrr@10": 0.5,
            "n": 3,
            "seek_inside": 0.5,
            "seek_distance_median_s": 10.0,  # of 5 and 10 s, the upper
            "seek_distance_p90_s": 10.0,
        }
    }


def test_chaffee_eval_bad_file_is_one_line_error_exit_2(warehouse_url, tmp_path, capsys):
    missing = tmp_path / "nope.jsonl"
    args = _eval_parser().parse_args(["eval", str(missing), "--mode", "text"])
    assert args.handler(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "nope.jsonl" in err and "Traceback" not in err
