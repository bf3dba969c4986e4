"""The public server on a bad day, as a stranger meets it: one real `chaffee serve` process on the sample
library, its warehouse behind a TCP proxy that can be cut, and a stand-in chat endpoint that drops
connections, hangs, echoes the key in a 401, fails with 500 and answers garbage.

The tests share the server and run in order: answers first, then the input limits, then the refused
key (whose pause is the longest), then the database outage, and last what the server printed.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import psycopg
import pytest
from markupsafe import escape

from chaffee_assets_tests.conftest import sample_copy
from chaffee_assets_tests.openai_stand_in import DROP, GARBAGE, HANG
from chaffee_assets_tests.pg_proxy import UnixSocketProxy, tcp_url, unix_socket_of
from chaffee_assets_tests.web_helpers import (
    ChatStandIn,
    RunningServer,
    chaffee_serve,
    serve_env,
)

# Neither looks like an OpenAI key or a URL password by its shape: only its value can hide it.
API_KEY = "drill-key-7f3a9c1e5b2d"
BASE_URL_PASSWORD = "basepw99"
ANSWER_TIMEOUT_S = 2.0
ANSWER_WORKERS = 2
ANSWER_QUEUE = 2
QUESTION = "Why avoid seed oils?"


@pytest.fixture(scope="module")
def model() -> Iterator[ChatStandIn]:
    stand_in = ChatStandIn()
    yield stand_in
    stand_in.close()


@pytest.fixture(scope="module")
def library_url(embedded_admin_url: str, sample_template_url: str) -> str:
    return sample_copy(embedded_admin_url, sample_template_url, "faults")


@pytest.fixture(scope="module")
def proxy(library_url: str) -> Iterator[UnixSocketProxy]:
    with UnixSocketProxy(unix_socket_of(library_url)) as running:
        yield running


def _env(database_url: str, base_url: str) -> dict[str, str]:
    return serve_env(
        database_url,
        OPENAI_API_KEY=API_KEY,
        OPENAI_BASE_URL=base_url,
        CHAFFEE_ANSWER_TIMEOUT_S=str(ANSWER_TIMEOUT_S),
        CHAFFEE_ANSWER_WORKERS=str(ANSWER_WORKERS),
        CHAFFEE_ANSWER_QUEUE=str(ANSWER_QUEUE),
        CHAFFEE_ANSWER_PAUSE_S="1",
        CHAFFEE_RATE_LIMIT_PER_MINUTE="100000",
    )


@pytest.fixture(scope="module")
def server(library_url: str, proxy: UnixSocketProxy, model: ChatStandIn) -> Iterator[RunningServer]:
    with chaffee_serve(_env(tcp_url(library_url, proxy.port), model.base_url)) as running:
        yield running


@pytest.fixture(scope="module")
def server_behind_a_password(library_url: str) -> Iterator[RunningServer]:
    """A second server whose model sits behind a URL with a password, on a port nothing listens on."""
    with chaffee_serve(_env(library_url, f"http://apiuser:{BASE_URL_PASSWORD}@127.0.0.1:1/v1")) as running:
        yield running


@pytest.fixture
def fresh_model(model: ChatStandIn, server: RunningServer, library_url: str) -> ChatStandIn:
    """The stand-in answering normally with no history, the ledger empty and answers not paused."""
    model.script.clear()
    model.after_script = 200
    model.observe = None
    model.hold()
    deadline = time.monotonic() + 30
    while _json(server, "/healthz")["answers"] != "available":
        assert time.monotonic() < deadline, "answers stayed paused"
        time.sleep(0.2)
    with psycopg.connect(library_url, autocommit=True) as conn:
        conn.execute("DELETE FROM answers")
        conn.execute("DELETE FROM answer_spend")
    model.requests.clear()
    return model


def _json(server: RunningServer, path: str) -> dict:
    return json.loads(server.get(path)[2])


def _ledger(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [row[0] for row in conn.execute("SELECT status FROM answer_spend ORDER BY spend_id")]


def _timed_get(server: RunningServer, path: str) -> tuple[float, int, dict[str, str], bytes]:
    started = time.monotonic()
    status, headers, body = server.get(path, timeout=120)
    return time.monotonic() - started, status, headers, body


def _shows_no_secret(text: str | bytes) -> bool:
    text = text.decode() if isinstance(text, bytes) else text
    return API_KEY not in text and BASE_URL_PASSWORD not in text


# -- 1. secrets ----------------------------------------------------------------------------------------


def test_an_unreachable_model_behind_a_url_with_a_password_shows_the_password_nowhere(
    server_behind_a_password: RunningServer,
) -> None:
    server = server_behind_a_password
    status, _, body = server.get(f"/api/answer?q={quote(QUESTION)}")
    assert status == 503 and json.loads(body)["error"].startswith("the answer model could not be reached")
    assert _shows_no_secret(body)
    health = server.get("/healthz")[2]
    assert "could not be reached" in json.loads(health)["answers"] and _shows_no_secret(health)
    page = server.get(f"/?q={quote(QUESTION)}&answer=1")[2]
    assert "No answer right now" in page.decode() and _shows_no_secret(page)
    printed = "".join(server.output)
    assert "apiuser:***@127.0.0.1" in printed  # the start-up line names the model's server, redacted
    assert "answer model unreachable" in printed and _shows_no_secret(printed)


def test_a_dropped_connection_is_a_503_that_pauses_answers(
    server: RunningServer, fresh_model: ChatStandIn
) -> None:
    fresh_model.after_script = DROP
    status, headers, body = server.get(f"/api/answer?q={quote(QUESTION)}")
    assert status == 503 and headers.get("retry-after")
    assert json.loads(body)["error"].startswith("the answer model could not be reached")
    assert "could not be reached" in _json(server, "/healthz")["answers"]


# -- 2 and 3. a hung model, its timeout, retries and the ledger ----------------------------------------


def test_a_hung_model_holds_only_the_answer_pool_and_searches_stay_fast(
    server: RunningServer, fresh_model: ChatStandIn, library_url: str
) -> None:
    fresh_model.after_script = HANG
    fresh_model.hang_s = 8.0
    # More answers at once than the server has threads for requests: without a pool of their own
    # they would take every thread, and searches would wait behind them.
    answers = 48
    with ThreadPoolExecutor(max_workers=answers + 4) as clients:
        asked = [
            clients.submit(_timed_get, server, f"/api/answer?q={quote(f'Why avoid seed oils, visitor {i}?')}")
            for i in range(answers)
        ]
        time.sleep(0.5)
        searches = [_timed_get(server, f"/api/search?q={quote(QUESTION)}&k=3") for _ in range(5)]
        results = [future.result() for future in asked]
    assert all(status == 200 for _, status, _, _ in searches)
    assert max(seconds for seconds, *_ in searches) < 2.0, [round(s[0], 2) for s in searches]

    busy = [r for r in results if r[1] == 503 and "busy" in json.loads(r[3])["error"]]
    admitted = answers - len(busy)
    assert admitted <= ANSWER_WORKERS + ANSWER_QUEUE
    assert all(seconds < 2.0 and headers.get("retry-after") for seconds, _, headers, _ in busy)
    # The hung ones end after one bounded wait (never a second one), as a 503 that says so.
    assert all(r[1] == 503 for r in results)
    assert max(seconds for seconds, *_ in results) < 2 * ANSWER_TIMEOUT_S + 2
    assert all("did not answer within" in json.loads(r[3])["error"] for r in results if r not in busy)
    # A timeout is never retried (each question reached the model once), and every call the model
    # received was reserved first and kept at its estimate.
    calls = fresh_model.requests
    questions = {request["messages"][-1]["content"].split("\n", 1)[0] for request in calls}
    assert 1 <= len(calls) <= admitted and len(questions) == len(calls)
    assert _ledger(library_url) == ["uncertain"] * len(calls)


def test_a_refusal_before_work_is_retried_once_and_each_call_is_reserved_first(
    server: RunningServer, fresh_model: ChatStandIn, library_url: str
) -> None:
    def reservations_open() -> list[int]:
        with psycopg.connect(library_url) as conn:
            rows = conn.execute("SELECT spend_id FROM answer_spend WHERE status = 'reserved'").fetchall()
        return [row[0] for row in rows]

    fresh_model.observe = reservations_open
    fresh_model.script[:] = [500]
    status, _, body = server.get(f"/api/answer?q={quote(QUESTION)}")
    assert status == 200 and json.loads(body)["answered"]
    seen = [request["observed"] for request in fresh_model.requests]
    assert len(seen) == 2 and all(len(ids) == 1 for ids in seen)
    assert seen[0] != seen[1]  # the retry had a reservation of its own
    assert _ledger(library_url) == ["settled"]  # the refused call's reservation was released


# -- 5. a malformed reply -----------------------------------------------------------------------------


def test_a_reply_that_is_not_json_is_a_503_that_keeps_the_estimate_and_pauses(
    server: RunningServer, fresh_model: ChatStandIn, library_url: str
) -> None:
    fresh_model.script[:] = [GARBAGE]
    status, headers, body = server.get(f"/api/answer?q={quote(QUESTION)}")
    assert status == 503 and headers.get("retry-after")
    assert json.loads(body)["error"].startswith("the answer model sent a reply that could not be read")
    assert _ledger(library_url) == ["uncertain"]
    assert "could not be read" in _json(server, "/healthz")["answers"]
    assert len(fresh_model.requests) == 1


# -- 4. input ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("character", ["%00", "%07", "%1B", "%7F"])
@pytest.mark.parametrize("path", ["/api/search", "/api/answer"])
def test_a_control_character_in_the_question_is_a_400_in_the_api_shape(
    server: RunningServer, path: str, character: str
) -> None:
    status, headers, body = server.get(f"{path}?q=seed{character}oils")
    assert status == 400 and headers["content-type"] == "application/json"
    assert "control character" in json.loads(body)["error"]


@pytest.mark.parametrize(
    "query",
    ["q=seed%00oils", "q=seed%00oils&answer=1", "q=seed+oils&from=2024%0001-01", "q=seed+oils&mode=te%00xt"],
)
def test_a_control_character_on_the_page_is_a_400_page(server: RunningServer, query: str) -> None:
    status, headers, body = server.get(f"/?{query}")
    assert status == 400 and headers["content-type"].startswith("text/html")
    assert "control character" in body.decode()
    assert b"\x00" not in body  # what was typed is shown back without the refused character


def test_a_control_character_in_any_api_parameter_is_a_400(server: RunningServer) -> None:
    for query in ["q=seed&from=2024-01-01%00", "q=seed&mode=text%00"]:
        status, _, body = server.get(f"/api/search?{query}")
        assert status == 400 and "error" in json.loads(body), query


def _raw_request(server: RunningServer, head: bytes, body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    host, port = server.base_url.removeprefix("http://").split(":")
    head = head.replace(b"Host: x\r\n", b"Host: x\r\nConnection: close\r\n", 1)
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        # The server may answer and close before it has read everything.
        with contextlib.suppress(OSError):
            sock.sendall(head + body)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head_text, _, payload = received.partition(b"\r\n\r\n")
    lines = head_text.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), headers, payload


@pytest.mark.parametrize(
    ("name", "head", "body", "status"),
    [
        ("a 10 KB URL", b"GET /api/search?q=" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", b"", 414),
        ("a 40 KB URL", b"GET /api/search?q=" + b"a" * 40_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", b"", 414),
        (
            "a 40 KB header",
            b"GET /api/search?q=seed HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 40_000 + b"\r\n\r\n",
            b"",
            431,
        ),
        ("a malformed request line", b"NOT HTTP AT ALL\r\nHost: x\r\n\r\n", b"", 400),
        (
            "a 1 MB body",
            b"GET /api/search?q=seed HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n",
            b"c" * 100_000,
            413,
        ),
        # Sent whole before the answer: closing on it unread reset the connection every time, and
        # the client never saw the 413.
        (
            "a whole 200 KB body",
            b"POST /api/search?q=seed HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n\r\n",
            b"c" * 200_000,
            413,
        ),
    ],
)
def test_an_oversize_request_gets_the_api_error_shape(
    server: RunningServer, name: str, head: bytes, body: bytes, status: int
) -> None:
    answered, headers, payload = _raw_request(server, head, body)
    assert answered == status, name
    assert headers["content-type"] == "application/json" and json.loads(payload)["error"], name


# -- one set of limits and messages: the page, the API and the CLI -----------------------------------------

LONG_QUESTION = "why " * 75 + "a"  # 301 characters


@pytest.mark.parametrize(
    ("web_query", "cli_argv", "message"),
    [
        (
            "q=salt&from=2024-13-01",
            ["ingest", "--library", ".", "--from", "2024-13-01"],
            "the 'from' date must be YYYY-MM-DD, not '2024-13-01'",
        ),
        (
            "q=salt&from=2024-01-01T00:00",
            ["search", "salt", "--from", "2024-01-01T00:00"],
            "the 'from' date must be YYYY-MM-DD, not '2024-01-01T00:00'",
        ),
        (
            f"q={LONG_QUESTION}",
            ["search", LONG_QUESTION],
            "the question is 301 characters long; the limit is 300",
        ),
        ("q=salt&k=100000", ["search", "salt", "-k", "100000"], "k must be between 1 and 50, not 100000"),
        ("q=salt&k=ten", None, "k must be a whole number, not 'ten'"),
        (
            "q=salt&mode=fuzzy",
            ["search", "salt", "--mode", "fuzzy"],
            "mode must be one of hybrid, vector, text, not 'fuzzy'",
        ),
    ],
)
def test_a_mistake_reads_the_same_on_the_page_in_the_api_and_in_the_cli(
    server: RunningServer,
    capsys: pytest.CaptureFixture[str],
    web_query: str,
    cli_argv: list[str] | None,
    message: str,
) -> None:
    from chaffee_assets.cli.main import main

    web_query = web_query.replace(" ", "+")
    status, _, body = server.get(f"/api/search?{web_query}")
    assert (status, json.loads(body)) == (400, {"error": message})
    status, _, page = server.get(f"/?{web_query}")
    assert status == 400 and str(escape(message)) in page.decode()
    if cli_argv is None:
        return
    try:
        code = main(cli_argv)
    except SystemExit as exit_:  # argparse's own refusal of a choice
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2
    if cli_argv[:3] == ["search", "salt", "--mode"]:
        assert "invalid choice: 'fuzzy'" in err  # argparse lists the choices itself
    else:
        assert err == f"error: {message}\n"


def test_the_api_schema_declares_the_400_it_answers(server: RunningServer) -> None:
    schema = _json(server, "/api/openapi.json")
    for path in ("/api/search", "/api/answer"):
        responses = schema["paths"][path]["get"]["responses"]
        assert "400" in responses and "422" not in responses, path
    assert "HTTPValidationError" not in json.dumps(schema)


# -- 1. a key echoed back by the model ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "reason"),
    [(400, "rejected the request (HTTP 400)"), (401, "refused the API key (HTTP 401)")],
)
def test_a_key_the_model_echoes_is_shown_nowhere_and_pauses_answers(
    server: RunningServer, fresh_model: ChatStandIn, status: int, reason: str
) -> None:
    fresh_model.script[:] = [status]
    answered, _, body = server.get(f"/api/answer?q={quote(QUESTION)}")
    assert "Incorrect API key" not in body.decode()  # the model's own words are never passed on
    assert answered == 503 and _shows_no_secret(body)
    assert json.loads(body)["error"].startswith(f"the answer model {reason}")
    assert fresh_model.requests[0]["auth"] == f"Bearer {API_KEY}"  # the stand-in did echo it
    health = server.get("/healthz")[2]
    assert reason in json.loads(health)["answers"] and _shows_no_secret(health)
    page = server.get(f"/?q={quote(QUESTION)}")[2]
    assert escape(reason) in page.decode() and _shows_no_secret(page)


@pytest.mark.parametrize("text", ["a." * 20_000, "http://" * 6_000, "sk-" * 13_000, "q=" + "a" * 40_000])
def test_redacting_a_long_hostile_text_takes_milliseconds(text: str) -> None:
    # Every log line passes through redact(), the access log's with the whole URL in it.
    from chaffee_assets.error_text import redact

    started = time.perf_counter()
    redact(text)
    assert time.perf_counter() - started < 0.5


# -- 6. a dead database ----------------------------------------------------------------------------------


def test_a_dead_database_fails_fast_and_service_returns_without_a_restart(
    server: RunningServer, proxy: UnixSocketProxy
) -> None:
    assert server.get("/healthz")[0] == 200
    proxy.cut()
    try:
        for _ in range(4):
            seconds, status, headers, body = _timed_get(server, "/healthz")
            assert status == 503 and seconds < 2.0, (status, seconds)
            assert json.loads(body)["database"] == "unreachable" and headers.get("retry-after")
        seconds, status, headers, body = _timed_get(server, f"/api/search?q={quote(QUESTION)}")
        assert (
            status == 503
            and seconds < 2.0
            and json.loads(body)["error"].startswith("the warehouse is unavailable")
        )
        seconds, status, _, body = _timed_get(server, f"/?q={quote(QUESTION)}")
        assert status == 503 and seconds < 2.0 and b"the warehouse is unavailable" in body
    finally:
        proxy.restore()
    restored = time.monotonic()
    while server.get("/healthz")[0] != 200:
        assert time.monotonic() - restored < 8.0, "the server did not come back within 8 s"
        time.sleep(0.2)
    assert server.get(f"/api/search?q={quote(QUESTION)}")[0] == 200
    assert server.process.poll() is None  # the same process, never restarted


# -- 1. what the server printed ---------------------------------------------------------------------------


def test_nothing_the_server_printed_holds_a_secret(server: RunningServer) -> None:
    printed = "".join(server.output)
    assert "Incorrect API key provided: ***" in printed  # the model's own words are logged, redacted
    assert "warehouse is unreachable" in printed
    assert _shows_no_secret(printed)
