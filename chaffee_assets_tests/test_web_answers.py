"""Answers with citations through the real `openai` client against a stand-in chat endpoint on
127.0.0.1: the prompt, checked citations, the daily answer budget, the cache, and 503 when unavailable."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest
from fastapi.testclient import TestClient

from chaffee_assets.web import create_app
from chaffee_assets.web.answers import ledger
from chaffee_assets.web.answers.passages import (
    NO_ANSWER_MARK,
    NOT_ANSWERED_TEXT,
    NOTHING_FOUND_TEXT,
    NOTICE,
    answer_parts,
    check_citations,
    normalise_question,
)
from chaffee_assets.web.settings import WebSettings
from chaffee_assets_tests.conftest import sample_copy
from chaffee_assets_tests.web_helpers import ChatStandIn, cite_first_two

QUESTION = "Why might my LDL jump after going carnivore if I'm slim and athletic?"


@pytest.fixture
def sample_url(embedded_admin_url: str, sample_template_url: str) -> str:
    """A fresh copy of the filled warehouse per test, so each starts with an empty ledger and cache."""
    return sample_copy(embedded_admin_url, sample_template_url, "answers")


@pytest.fixture
def model() -> Iterator[ChatStandIn]:
    stand_in = ChatStandIn()
    yield stand_in
    stand_in.close()


def _client(url: str, model: ChatStandIn, **overrides: object) -> TestClient:
    settings = WebSettings(
        openai_api_key="sk-test",
        openai_base_url=model.base_url,
        rate_limit_per_minute=10_000,
        **overrides,  # type: ignore[arg-type]
    )
    return TestClient(create_app(settings, database_url=url))


def _ledger(url: str) -> list[tuple[str, float]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT status, usd FROM answer_spend ORDER BY spend_id").fetchall()
    return [(status, float(usd)) for status, usd in rows]


# -- checking what the model wrote (no model needed) -----------------------------------------------------


def test_a_made_up_citation_is_dropped_and_real_ones_kept() -> None:
    checked = check_citations(
        "LDL rises in lean people [2]. It causes nothing [9]. Older people live longer [1, 7].", 6
    )
    assert checked.text == "LDL rises in lean people [2]. It causes nothing. Older people live longer [1]."
    assert checked.cited == [2, 1] and checked.answered


def test_dropping_invented_citations_leaves_no_broken_words() -> None:
    checked = check_citations("Salt matters on keto [1]. Also [8] and [9]. Fat is fuel [2] and [7].", 6)
    assert checked.text == "Salt matters on keto [1]. Fat is fuel [2]."
    assert check_citations("Meat [1], [2] and [3] says so.", 6).text == "Meat [1][2][3] says so."


def test_an_answer_citing_no_given_passage_is_not_an_answer() -> None:
    checked = check_citations("Eat more fibre [12].", 6)
    assert (checked.text, checked.cited, checked.answered) == (NOT_ANSWERED_TEXT, [], False)
    assert check_citations(NO_ANSWER_MARK, 6).answered is False
    assert check_citations("A claim with no source at all.", 6).answered is False


def test_answer_parts_split_words_and_citations_in_order() -> None:
    assert answer_parts("He says so [1][3]. Done") == [
        ("He says so ", None),
        ("[1]", 1),
        ("[3]", 3),
        (". Done", None),
    ]


def test_the_same_question_in_other_words_case_and_punctuation_is_the_same_key() -> None:
    assert normalise_question("  Does LDL   cause heart disease?? ") == normalise_question(
        "does ldl cause heart disease"
    )


# -- the whole path through the API -------------------------------------------------------------------------


def test_answer_cites_numbered_passages_with_title_date_and_time(sample_url: str, model: ChatStandIn) -> None:
    with _client(sample_url, model) as client:
        response = client.get("/api/answer", params={"q": QUESTION})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["answered"] and body["model"] == "gpt-4.1-mini" and not body["cached"]
    assert body["notice"] == NOTICE
    assert [c["n"] for c in body["citations"]] == [1, 2]
    assert "[1]" in body["answer"] and "[2]" in body["answer"]
    for cited in body["citations"]:
        assert (
            cited["link"] == f"https://www.youtube.com/watch?v={cited['video_id']}&t={int(cited['start_s'])}s"
        )
        assert cited["title"] and cited["text"]
    assert body["citations"][0]["video_id"] == "smplLDL_hrt"
    # What the model was sent: the rules, then the question and six numbered passages.
    (request,) = model.requests
    assert request["path"] == "/v1/chat/completions" and request["auth"] == "Bearer sk-test"
    assert request["model"] == "gpt-4.1-mini" and request["max_tokens"] == 400
    system, user = request["messages"]
    assert "only these passages" in system["content"] and NO_ANSWER_MARK in system["content"]
    assert user["content"].startswith(f"Question: {QUESTION}")
    assert (
        '[1] "LDL Cholesterol and Heart Disease: What the Evidence Actually Says" (2024-02-12, at '
        in user["content"]
    )
    assert "[6] " in user["content"] and "[7] " not in user["content"]
    assert body["cost_usd"] > 0
    assert _ledger(sample_url) == [("settled", pytest.approx(body["cost_usd"]))]


def test_a_made_up_citation_from_the_model_never_reaches_the_user(
    sample_url: str, model: ChatStandIn
) -> None:
    model.reply = lambda messages: "Lean people see LDL rise [1]. Also something invented [42]."
    with _client(sample_url, model) as client:
        body = client.get("/api/answer", params={"q": QUESTION}).json()
        page = client.get("/", params={"q": QUESTION}).text  # the saved answer, on the page
    assert body["answer"] == "Lean people see LDL rise [1]. Also something invented."
    assert [c["n"] for c in body["citations"]] == [1]
    assert "[42]" not in page and 'class="citation"' in page


def test_when_the_passages_do_not_answer_it_says_so(sample_url: str, model: ChatStandIn) -> None:
    model.reply = lambda messages: NO_ANSWER_MARK
    with _client(sample_url, model) as client:
        body = client.get("/api/answer", params={"q": "How much red meat did he eat last Tuesday?"}).json()
    assert len(model.requests) == 1  # on topic: the model was asked, and found no answer
    assert body["answered"] is False and body["answer"] == NOT_ANSWERED_TEXT and body["citations"] == []


def test_a_question_nothing_in_the_videos_is_close_to_is_not_sent_to_the_model(
    sample_url: str, model: ChatStandIn
) -> None:
    with _client(sample_url, model) as client:
        body = client.get("/api/answer", params={"q": "What is the capital of Mongolia?"}).json()
        page = client.get("/", params={"q": "What is the capital of Mongolia?"}).text
    assert model.requests == [] and _ledger(sample_url) == []
    assert body["answered"] is False and body["answer"] == NOTHING_FOUND_TEXT and body["cost_usd"] == 0
    assert "Nothing in the videos is closely related to this question" in page
    assert "weakly related" in page


def test_the_same_question_within_a_day_is_served_from_the_warehouse_at_no_cost(
    sample_url: str, model: ChatStandIn
) -> None:
    with _client(sample_url, model) as client:
        first = client.get("/api/answer", params={"q": QUESTION}).json()
    # Another server process (a new app) on the same warehouse, the question asked differently.
    with _client(sample_url, model) as client:
        again = client.get(
            "/api/answer",
            params={"q": "  why might my LDL jump after going carnivore if i'm slim and athletic"},
        ).json()
    assert len(model.requests) == 1
    assert again["cached"] is True and again["cost_usd"] == 0
    assert again["answer"] == first["answer"] and again["citations"] == first["citations"]
    assert len(_ledger(sample_url)) == 1


def test_a_different_filter_is_a_different_question(sample_url: str, model: ChatStandIn) -> None:
    with _client(sample_url, model) as client:
        client.get("/api/answer", params={"q": QUESTION})
        client.get("/api/answer", params={"q": QUESTION, "from": "2024-01-01"})
    assert len(model.requests) == 2


def test_without_a_key_it_answers_503_and_sends_nothing(sample_url: str, model: ChatStandIn) -> None:
    settings = WebSettings(openai_api_key=None, openai_base_url=model.base_url)
    with TestClient(create_app(settings, database_url=sample_url)) as client:
        response = client.get("/api/answer", params={"q": QUESTION})
        page = client.get("/", params={"q": QUESTION}).text
    assert response.status_code == 503 and "OPENAI_API_KEY" in response.json()["error"]
    assert model.requests == [] and _ledger(sample_url) == []
    # The page says answers are off rather than leaving the box out, and offers none.
    assert "Answers are off on this server" in page and 'name="answer"' not in page


def test_when_the_days_budget_is_spent_it_answers_503_and_sends_nothing(
    sample_url: str, model: ChatStandIn
) -> None:
    with _client(sample_url, model) as client:
        assert client.get("/api/answer", params={"q": QUESTION}).status_code == 200
    spent = sum(usd for _, usd in _ledger(sample_url))
    # A budget with room for less than another answer's estimate.
    with _client(sample_url, model, answer_budget_usd=spent + 0.0001) as client:
        refused = client.get("/api/answer", params={"q": "How long until my body burns fat for fuel?"})
        cached = client.get("/api/answer", params={"q": QUESTION})
    assert refused.status_code == 503
    assert "answer budget of $" in refused.json()["error"] and "midnight UTC" in refused.json()["error"]
    assert int(refused.headers["retry-after"]) >= 1
    assert len(model.requests) == 1 and len(_ledger(sample_url)) == 1
    assert cached.status_code == 200 and cached.json()["cached"]  # the saved answer still costs nothing


def test_a_budget_of_zero_sends_nothing(sample_url: str, model: ChatStandIn) -> None:
    with _client(sample_url, model, answer_budget_usd=0.0) as client:
        response = client.get("/api/answer", params={"q": QUESTION})
    assert response.status_code == 503 and model.requests == []


def test_a_rate_limited_model_is_a_503_then_a_pause_that_sends_nothing(
    sample_url: str, model: ChatStandIn
) -> None:
    model.script = [429, 429]  # the client retries once, then gives up
    with _client(sample_url, model) as client:
        first = client.get("/api/answer", params={"q": QUESTION})
        second = client.get("/api/answer", params={"q": "Why fry in beef fat instead of vegetable oil?"})
        health = client.get("/healthz").json()
    assert first.status_code == 503 and "rate-limiting" in first.json()["error"]
    assert first.headers["retry-after"] == "7"  # the model's own Retry-After
    assert second.status_code == 503 and len(model.requests) == 2  # nothing more was sent
    assert "paused" in health["answers"]
    assert _ledger(sample_url) == []  # refused calls are not billed: the reservation is released


def test_a_failing_model_is_a_503_and_nothing_is_billed(sample_url: str, model: ChatStandIn) -> None:
    model.script = [500, 500]
    with _client(sample_url, model) as client:
        response = client.get("/api/answer", params={"q": QUESTION})
    assert response.status_code == 503 and "HTTP 500" in response.json()["error"]
    assert len(model.requests) == 2 and _ledger(sample_url) == []


def test_one_server_error_is_retried_by_the_client_and_answered(sample_url: str, model: ChatStandIn) -> None:
    model.script = [500]
    with _client(sample_url, model) as client:
        response = client.get("/api/answer", params={"q": QUESTION})
    assert response.status_code == 200 and len(model.requests) == 2
    assert [status for status, _ in _ledger(sample_url)] == ["settled"]


def test_an_unreachable_model_is_a_503_and_its_estimate_kept(sample_url: str, model: ChatStandIn) -> None:
    url = model.base_url
    model.close()  # nothing listens there any more
    settings = WebSettings(openai_api_key="sk-test", openai_base_url=url, answer_retries=0)
    with TestClient(create_app(settings, database_url=sample_url)) as client:
        response = client.get("/api/answer", params={"q": QUESTION})
    assert response.status_code == 503 and "could not be reached" in response.json()["error"]
    # The call may or may not have been billed: the estimate stays, so the budget errs low.
    assert [status for status, _ in _ledger(sample_url)] == ["uncertain"]


def test_concurrent_requests_cannot_overspend_the_budget(sample_url: str, model: ChatStandIn) -> None:
    def slow_reply(messages: list[dict[str, str]]) -> str:
        time.sleep(3)  # every other request reserves while this call is in flight
        return cite_first_two(messages)

    model.reply = slow_reply
    # With input free, an answer's estimate is exactly its 400-token output allowance: the budget
    # holds one reservation at a time, not two.
    estimate = 400 * 1.60 / 1_000_000
    questions = [f"What does he say about eating red meat, question {i}?" for i in range(6)]
    results: list[int] = []
    settings = {"answer_budget_usd": estimate * 1.5, "input_usd_per_mtok": 0.0}
    with _client(sample_url, model, **settings) as client:
        threads = [
            threading.Thread(
                target=lambda q=q: results.append(client.get("/api/answer", params={"q": q}).status_code)
            )
            for q in questions
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sorted(results) == [200, 503, 503, 503, 503, 503]
    assert len(model.requests) == 1
    with psycopg.connect(sample_url) as conn:
        assert ledger.spent_today(conn, datetime.now(UTC)) <= estimate * 1.5


def test_the_page_shows_the_answer_box_above_the_results(sample_url: str, model: ChatStandIn) -> None:
    with _client(sample_url, model) as client:
        pending = client.get("/", params={"q": QUESTION}).text
        sent_before_asked = len(model.requests)
        written = client.get("/", params={"q": QUESTION, "answer": "1"}).text
        fragment = client.get("/partials/answer", params={"q": QUESTION})
    # Before the answer exists: a box the script fills, with a button for browsers without it.
    assert 'data-pending="/partials/answer?q=' in pending
    assert 'name="answer" value="1"' in pending and sent_before_asked == 0
    # Asked for: written on the server, above the moments, its citations linking to them.
    assert written.index('id="answer"') < written.index('id="results"')
    assert 'class="citation" href="https://www.youtube.com/watch?v=smplLDL_hrt&amp;t=' in written
    assert NOTICE.split(":")[0] in written
    assert fragment.status_code == 200 and fragment.text.lstrip().startswith('<section id="answer"')
    assert len(model.requests) == 1


def test_the_answer_box_follows_the_search_s_judgement_and_names_no_model_it_did_not_ask(
    sample_url: str, model: ChatStandIn
) -> None:
    with _client(sample_url, model) as client:
        # Said in the keto video ("cramps, especially at night … magnesium can help") though its
        # cosine is under the floor: the model is asked.
        cramps = client.get("/api/answer", params={"q": "why do I get cramps at night"}).json()
        assert cramps["answered"] and cramps["model"] and len(model.requests) == 1
        # Nothing related: no model is asked, and none is named on the API or the page.
        nonsense = client.get("/api/answer", params={"q": "asdf qwer zxcv"}).json()
        page = client.get("/", params={"q": "asdf qwer zxcv", "answer": "1"}).text
    assert nonsense["answered"] is False and nonsense["model"] is None and len(model.requests) == 1
    assert "Written by" not in page and "No answer was written" in page
