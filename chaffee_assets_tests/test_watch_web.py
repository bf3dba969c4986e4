"""What the server tells the operator and the channel's owner, on real requests to a sample warehouse:
`/metrics` (parsed by prometheus-client's own parser) and the question log (`asked_questions`), its
daily summary asset and retention; a log that cannot be written never fails a search."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import psycopg
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from chaffee_assets.defs.audience_assets import asked_questions_summary
from chaffee_assets.defs.resources import EmbeddingModelResource, WarehouseResource
from chaffee_assets.warehouse import connect
from chaffee_assets.web import create_app
from chaffee_assets.web.settings import WebSettings
from chaffee_assets_tests.conftest import sample_copy
from chaffee_assets_tests.web_helpers import ChatStandIn

LDL = "does high LDL cholesterol cause heart attacks"
LDL_AGAIN = "Does high LDL cause heart attacks?"
NONSENSE = "quantum blockchain for submarine gardening"


@pytest.fixture
def sample_url(embedded_admin_url: str, sample_template_url: str) -> str:
    """A copy of the filled warehouse per test, so each starts with an empty question log."""
    return sample_copy(embedded_admin_url, sample_template_url, "watch")


@pytest.fixture(scope="module")
def model() -> Iterator[ChatStandIn]:
    stand_in = ChatStandIn()
    yield stand_in
    stand_in.close()


def _client(
    url: str, model: ChatStandIn | None = None, client_address: str = "127.0.0.1", **settings: object
) -> TestClient:
    answers = {"openai_api_key": "sk-test", "openai_base_url": model.base_url} if model else {}
    settings = {"rate_limit_per_minute": 10_000, **answers, **settings}
    # An operator's scraper on the same machine (/metrics answers loopback and private networks).
    return TestClient(
        create_app(WebSettings(**settings), database_url=url),  # type: ignore[arg-type]
        client=(client_address, 50000),
    )


def _samples(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    values = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def _value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def _flush(client: TestClient) -> None:
    client.app.state.question_log.flush()  # type: ignore[attr-defined]


def test_metrics_count_requests_searches_answers_and_rate_limits(sample_url: str, model: ChatStandIn) -> None:
    with _client(sample_url, model) as client:
        before = _samples(client)
        assert client.get("/api/search", params={"q": LDL}).status_code == 200
        assert client.get("/api/search", params={"q": NONSENSE, "mode": "vector"}).status_code == 200
        assert client.get("/", params={"q": LDL}).status_code == 200
        assert client.get("/api/search", params={"q": ""}).status_code == 400
        first = client.get("/api/answer", params={"q": LDL}).json()
        again = client.get("/api/answer", params={"q": LDL}).json()
        assert first["cached"] is False and again["cached"] is True and first["cost_usd"] > 0
        assert client.get("/no/such/page").status_code == 404
        after = _samples(client)

    def delta(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert delta("chaffee_http_requests_total", route="/api/search", method="GET", status="200") == 2
    assert delta("chaffee_http_requests_total", route="/api/search", method="GET", status="400") == 1
    assert delta("chaffee_http_requests_total", route="/", method="GET", status="200") == 1
    assert delta("chaffee_http_requests_total", route="/api/answer", method="GET", status="200") == 2
    # An unknown path is one label, whatever the path: a scanner cannot grow the series.
    assert delta("chaffee_http_requests_total", route="unmatched", method="GET", status="404") == 1
    assert delta("chaffee_searches_total", mode="hybrid") == 2
    assert delta("chaffee_searches_total", mode="vector") == 1
    assert delta("chaffee_searches_nothing_relevant_total") == 1
    assert delta("chaffee_search_duration_seconds_count") == 3
    assert delta("chaffee_http_request_duration_seconds_count", route="/api/search") == 3
    assert delta("chaffee_answers_total", source="model") == 1
    assert delta("chaffee_answers_total", source="cache") == 1
    assert delta("chaffee_answer_duration_seconds_count") == 2
    assert delta("chaffee_answer_spend_usd_total") == pytest.approx(first["cost_usd"])

    with _client(sample_url, rate_limit_per_minute=1) as limited:
        before = _samples(limited)
        statuses = [limited.get("/api/search", params={"q": LDL}).status_code for _ in range(3)]
        after = _samples(limited)
    assert statuses.count(429) >= 1
    assert _value(after, "chaffee_rate_limited_requests_total", route="/api/search") - _value(
        before, "chaffee_rate_limited_requests_total", route="/api/search"
    ) == statuses.count(429)


def test_every_search_and_answer_is_in_asked_questions_without_the_address(
    sample_url: str, model: ChatStandIn
) -> None:
    with _client(sample_url, model) as client:
        client.get("/api/search", params={"q": LDL, "from": "2024-01-01", "to": "2024-12-31"})
        client.get("/api/search", params={"q": NONSENSE, "mode": "text"})
        client.get("/", params={"q": LDL_AGAIN})
        client.get("/api/answer", params={"q": LDL})
        client.get("/api/answer", params={"q": LDL})
        _flush(client)
    with connect(sample_url) as conn:
        rows = conn.execute(
            "SELECT question, mode, kind, published_from, hits, best_similarity, nothing_relevant, latency_ms, "
            "answer_cost_usd, answer_cached FROM asked_questions ORDER BY asked_at"
        ).fetchall()
        hashes = {row[0] for row in conn.execute("SELECT client_hash FROM question_log")}
        columns = [
            row[0]
            for row in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'question_log'"
            )
        ]
    assert [(r[0], r[1], r[2]) for r in rows] == [
        (LDL, "hybrid", "search"),
        (NONSENSE, "text", "search"),
        (LDL_AGAIN, "hybrid", "search"),
        (LDL, "hybrid", "answer"),
        (LDL, "hybrid", "answer"),
    ]
    ldl, nonsense, _, answer, cached = rows
    assert ldl[3] == date(2024, 1, 1) and ldl[4] > 0 and ldl[5] is not None and ldl[6] is False
    assert nonsense[4] == 0 and nonsense[6] is True  # no word of it is in the library
    assert all(row[7] > 0 for row in rows)
    assert answer[8] > 0 and answer[9] is False and cached[8] == 0 and cached[9] is True
    # One client (the test client), one hash of the day, and no column that could hold an address.
    assert len(hashes) == 1 and len(next(iter(hashes))) == 32 and "testclient" not in next(iter(hashes))
    assert not {"ip", "address", "client", "user_agent"} & set(columns)


def test_an_unwritable_log_never_fails_a_search(sample_url: str) -> None:
    with connect(sample_url) as conn:
        # Every insert into the log is refused, as by a full disk or a revoked grant.
        conn.execute("ALTER TABLE question_log ADD CONSTRAINT refuse_all CHECK (false) NOT VALID")
        conn.commit()
    with _client(sample_url) as client:
        before = _value(_samples(client), "chaffee_question_log_dropped_total")
        response = client.get("/api/search", params={"q": LDL})
        assert response.status_code == 200 and response.json()["hits"]
        assert client.get("/", params={"q": LDL}).status_code == 200
        _flush(client)
        dropped = _value(_samples(client), "chaffee_question_log_dropped_total") - before
    assert dropped == 2


def test_a_blocked_log_neither_slows_a_search_nor_loses_its_question(sample_url: str) -> None:
    with _client(sample_url) as client:
        assert client.get("/api/search", params={"q": LDL}).status_code == 200  # warm
        _flush(client)
        with connect(sample_url) as blocker:
            # Another session holds the table: the log's insert waits for it; the searches must not.
            blocker.execute("LOCK TABLE question_log IN ACCESS EXCLUSIVE MODE")
            started = time.perf_counter()
            for question in (LDL, NONSENSE, LDL_AGAIN):
                assert client.get("/api/search", params={"q": question}).status_code == 200
            searching_s = time.perf_counter() - started
            time.sleep(0.5)
            with connect(sample_url) as reader:
                reader.execute("SET lock_timeout = '100ms'")
                with pytest.raises(psycopg.errors.LockNotAvailable):
                    reader.execute("SELECT count(*) FROM question_log")
            blocker.rollback()
        _flush(client)
    assert searching_s < 10
    with connect(sample_url) as conn:
        assert conn.execute("SELECT count(*) FROM question_log").fetchone()[0] == 4


def test_question_log_off_records_nothing(sample_url: str) -> None:
    with _client(sample_url, question_log=False) as client:
        assert client.get("/api/search", params={"q": LDL}).status_code == 200
    with connect(sample_url) as conn:
        assert conn.execute("SELECT count(*) FROM question_log").fetchone()[0] == 0


def test_daily_summary_groups_near_duplicates_counts_unanswered_and_enforces_retention(
    sample_url: str,
) -> None:
    today = datetime.now(UTC).date()
    day = today - timedelta(days=1)
    asked = [
        (LDL, False, 0.62),
        (LDL, False, 0.61),
        (LDL_AGAIN, False, 0.6),
        ("Is LDL cholesterol dangerous for the heart?", False, 0.55),
        ("why avoid seed oils", False, 0.5),
        (NONSENSE, True, 0.05),
        (NONSENSE.upper() + "?", True, 0.05),
    ]
    with connect(sample_url) as conn:
        for i, (question, unanswered, similarity) in enumerate(asked):
            conn.execute(
                "INSERT INTO question_log (asked_at, question, mode, kind, hits, best_similarity, nothing_relevant, "
                "latency_ms) VALUES (%s, %s, 'hybrid', 'search', 5, %s, %s, 12)",
                (
                    datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=i),
                    question,
                    similarity,
                    unanswered,
                ),
            )
        conn.execute(
            "INSERT INTO question_log (asked_at, question, mode, kind, hits, nothing_relevant, latency_ms) "
            "VALUES (now() - interval '91 days', 'an old question', 'hybrid', 'search', 1, false, 9)"
        )
        conn.commit()
    result = dg.materialize(
        [asked_questions_summary],
        partition_key=day.isoformat(),
        resources={
            "warehouse": WarehouseResource(database_url=sample_url),
            "embedding_model": EmbeddingModelResource(),
        },
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    metadata = result.asset_materializations_for_node("asked_questions_summary")[0].metadata
    assert metadata["questions"].value == 7 and metadata["unanswered_questions"].value == 2
    assert metadata["deleted_past_retention"].value == 1
    assert LDL in metadata["most_asked"].value and NONSENSE in metadata["unanswered"].value
    with connect(sample_url) as conn:
        summary = conn.execute(
            "SELECT rank, question, times_asked, times_unanswered, variants FROM asked_questions_daily "
            "WHERE day = %s ORDER BY rank",
            (day,),
        ).fetchall()
        left = conn.execute(
            "SELECT count(*) FROM question_log WHERE question = 'an old question'"
        ).fetchone()[0]
    top = summary[0]
    assert top[1] == LDL and top[2] == 4 and top[3] == 0  # the LDL wordings are one question
    assert set(top[4]) == {LDL, LDL_AGAIN, "Is LDL cholesterol dangerous for the heart?"}
    nonsense = next(row for row in summary if row[3])
    assert nonsense[2] == 2 and nonsense[3] == 2  # case and a question mark do not make another question
    assert [row[1] for row in summary].count("why avoid seed oils") == 1 and len(summary) == 3
    assert left == 0


def test_serve_with_workers_prepares_an_empty_metrics_folder(tmp_path, monkeypatch) -> None:
    from chaffee_assets.cli.serve_cmd import multiprocess_metrics_dir

    monkeypatch.setenv("CHAFFEE_HOME", str(tmp_path))
    # Set, then removed: monkeypatch then restores it as it was, also after the code under test set it.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "")
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")
    stale = tmp_path / "metrics" / "serve-8123" / "counter_1.db"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"from a previous server")
    folder = multiprocess_metrics_dir(8123)
    assert folder == stale.parent and not stale.exists()
    assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == str(folder)


@pytest.mark.parametrize(
    ("address", "allowed"),
    [("127.0.0.1", True), ("::1", True), ("10.4.0.9", True), ("172.18.0.5", True), ("192.168.1.20", True),
     ("::ffff:10.0.0.7", True), ("8.8.8.8", False), ("2001:4860:4860::8888", False),
     ("203.0.113.7", False), ("2001:db8::1", False), ("::ffff:8.8.8.8", False), ("testclient", False)],
)  # fmt: skip
def test_metrics_answer_loopback_and_private_networks_only_without_a_token(
    sample_url: str, address: str, allowed: bool
) -> None:
    with _client(sample_url, client_address=address) as client:
        assert client.get("/healthz").status_code == 200  # something for the figures to count
        response = client.get("/metrics")
    if allowed:
        assert response.status_code == 200 and "chaffee_http_requests_total" in response.text
    else:
        assert response.status_code == 403, response.text
        assert "CHAFFEE_METRICS_TOKEN" in response.text and "chaffee_" not in response.text


def test_with_a_token_metrics_need_it_from_everywhere(sample_url: str) -> None:
    token = "s3cret-scrape-token"
    with _client(sample_url, client_address="8.8.8.8", metrics_token=token) as outside:
        assert outside.get("/healthz").status_code == 200
        right = outside.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        wrong = outside.get("/metrics", headers={"Authorization": "Bearer guess"})
        basic = outside.get("/metrics", headers={"Authorization": f"Basic {token}"})
        none = outside.get("/metrics")
    with _client(sample_url, client_address="127.0.0.1", metrics_token=token) as local:
        local_without = local.get("/metrics")
    assert right.status_code == 200 and "chaffee_http_requests_total" in right.text
    for refused in (wrong, basic, none, local_without):
        assert refused.status_code == 401, refused.text
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert token not in refused.text and "chaffee_" not in refused.text


def test_where_every_forwarded_address_is_trusted_only_the_token_opens_metrics(
    sample_url: str, monkeypatch
) -> None:
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "*")
    with _client(sample_url, client_address="127.0.0.1") as client:
        refused = client.get("/metrics")
    with _client(sample_url, client_address="127.0.0.1", metrics_token="t0ken") as client:
        opened = client.get("/metrics", headers={"Authorization": "Bearer t0ken"})
    assert refused.status_code == 403 and "CHAFFEE_METRICS_TOKEN" in refused.text
    assert opened.status_code == 200


def test_the_metrics_token_comes_from_the_environment_and_is_never_shown(monkeypatch) -> None:
    monkeypatch.setenv("CHAFFEE_METRICS_TOKEN", "from-the-env")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-the-env")
    web = WebSettings.from_env()
    assert web.metrics_token == "from-the-env"
    assert "from-the-env" not in repr(web)


def test_chaffee_serve_with_two_workers_records_questions_and_reports_the_whole_server(
    sample_url: str, tmp_path
) -> None:
    """As an operator runs it: `chaffee serve --workers 2`, a few questions over HTTP, read back from
    `asked_questions`, and `/metrics` scraped again and again: every scrape, whichever worker answers
    it, counts every search."""
    from urllib.parse import urlencode

    from chaffee_assets_tests.web_helpers import chaffee_serve, serve_env

    questions = [LDL, NONSENSE, "why avoid seed oils", "what does he eat in a day"]
    env = serve_env(sample_url, CHAFFEE_HOME=str(tmp_path), CHAFFEE_RATE_LIMIT_PER_MINUTE="10000")
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with chaffee_serve(env, "--workers", "2", "--no-access-log") as server:
        for question in questions:
            status, _, _ = server.get("/api/search?" + urlencode({"q": question}))
            assert status == 200
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with connect(sample_url) as conn:
                asked = [
                    row[0] for row in conn.execute("SELECT question FROM asked_questions ORDER BY asked_at")
                ]
            if len(asked) == len(questions):
                break
            time.sleep(0.2)
        scrapes = []
        for _ in range(6):
            status, headers, body = server.get("/metrics")
            assert status == 200
            samples = {
                (s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(body.decode())
                for s in family.samples
            }
            scrapes.append(
                (
                    samples.get(("chaffee_searches_total", (("mode", "hybrid"),))),
                    samples.get(("chaffee_searches_nothing_relevant_total", ())),
                )
            )
        # The same scrape relayed by a proxy on this machine for a client on the internet.
        relayed_status, _, relayed = server.get("/metrics", headers={"X-Forwarded-For": "203.0.113.7"})
    assert asked == questions
    assert scrapes == [(4.0, 1.0)] * 6, scrapes
    assert relayed_status == 403 and b"chaffee_searches_total" not in relayed
    assert any("metrics: /metrics sums the 2 workers' figures" in line for line in server.output)
