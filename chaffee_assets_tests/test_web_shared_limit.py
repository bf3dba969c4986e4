"""The rate limit shared through the warehouse: two `chaffee serve` processes on one database hold a
client to one limit; the limiter fails open within a second when the database does not answer; and
search results carry caching headers a CDN can use, with nothing personal cached."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from email.message import Message

import pytest

from chaffee_assets.warehouse import connect
from chaffee_assets.web.protection import (
    SHARED_LIMIT_RETRY_S,
    RateLimited,
    SharedRateLimiter,
    etag_matches,
)
from chaffee_assets_tests.pg_proxy import UnixSocketProxy, tcp_url, unix_socket_of
from chaffee_assets_tests.web_helpers import RunningServer, chaffee_serve, new_database, serve_env

LIMIT = 20  # per minute: one token back every 3 s


@pytest.fixture(scope="module")
def shared_warehouse(embedded_admin_url: str) -> str:
    return new_database(embedded_admin_url, "limit")


@pytest.fixture(scope="module")
def two_servers(shared_warehouse: str) -> Iterator[tuple[RunningServer, RunningServer]]:
    # 127.0.0.1 is the trusted proxy, so each test speaks as its own client through X-Forwarded-For.
    env = serve_env(
        shared_warehouse, CHAFFEE_RATE_LIMIT_PER_MINUTE=str(LIMIT), FORWARDED_ALLOW_IPS="127.0.0.1"
    )
    with chaffee_serve(env, "--no-access-log") as first, chaffee_serve(env, "--no-access-log") as second:
        yield first, second


def _get(server: RunningServer, path: str, client: str, **headers: str) -> tuple[int, Message, bytes]:
    """GET as `client`; the response's headers are read case-insensitively."""
    request = urllib.request.Request(server.base_url + path, headers={"X-Forwarded-For": client, **headers})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def test_a_client_alternating_between_two_servers_gets_the_limit_once(two_servers) -> None:
    client = "203.0.113.7"
    started = time.monotonic()
    statuses = []
    for attempt in range(2 * LIMIT):
        status, headers, _ = _get(two_servers[attempt % 2], f"/api/search?q=meat+{attempt}&mode=text", client)
        statuses.append(status)
        if status == 429:
            assert int(headers["Retry-After"]) >= 1 and headers["Cache-Control"] == "no-store"
    elapsed = time.monotonic() - started
    accepted = statuses.count(200)
    assert set(statuses) == {200, 429}
    # A full bucket, plus what refilled while the requests were made; per-process buckets gave 2x.
    assert LIMIT <= accepted <= LIMIT + int(elapsed * LIMIT / 60), (accepted, elapsed)
    # Each server accepted some of them: the limit was spent across both.
    assert 200 in statuses[0::2] and 200 in statuses[1::2]
    # Another client is untouched by the first one's refusals.
    assert _get(two_servers[1], "/api/search?q=meat&mode=text", "198.51.100.2")[0] == 200


def test_idle_buckets_are_pruned_and_no_address_is_stored(two_servers, shared_warehouse: str) -> None:
    _get(two_servers[0], "/api/search?q=eggs&mode=text", "192.0.2.44")
    with connect(shared_warehouse, autocommit=True) as conn:
        stored = [row[0] for row in conn.execute("SELECT client FROM web_rate_limit")]
        conn.execute("UPDATE web_rate_limit SET updated_at = now() - interval '61 seconds'")
    assert stored and not any("192.0.2" in client or "203.0.113" in client for client in stored)
    limiter = SharedRateLimiter(LIMIT, shared_warehouse)
    limiter.open()
    try:
        limiter.take("192.0.2.45")  # a process's first request also prunes
        # The server's bucket for 192.0.2.44 is the one this process computes: one key for all.
        assert limiter.bucket_of("192.0.2.44") in stored
        with connect(shared_warehouse, autocommit=True) as conn:
            clients = {row[0] for row in conn.execute("SELECT client FROM web_rate_limit")}
        assert clients == {limiter.bucket_of("192.0.2.45")}
    finally:
        limiter.close()


def test_search_results_carry_a_validator_and_shared_caching(two_servers) -> None:
    first, second = two_servers
    path = "/api/search?q=seed+oils&mode=text"
    status, headers, body = _get(first, path, "192.0.2.10")
    assert status == 200
    assert headers["Cache-Control"] == "public, max-age=30, s-maxage=60"
    etag = headers["ETag"]
    assert etag.startswith('W/"')
    # The same question on the other process has the same validator, and a match is a bodiless 304.
    status, again, body_304 = _get(second, path, "192.0.2.11", **{"If-None-Match": etag})
    assert (status, body_304, again["ETag"]) == (304, b"", etag)
    assert again["Cache-Control"] == "public, max-age=30, s-maxage=60"
    assert _get(second, path, "192.0.2.11", **{"If-None-Match": 'W/"other"'})[0] == 200
    # Nothing personal or client-specific is cached: pages, answers, refusals, errors.
    for other in ("/?q=seed+oils", "/api/answer?q=seed+oils", "/api/search?q=", "/healthz"):
        assert _get(first, other, "192.0.2.12")[1]["Cache-Control"] == "no-store", other


def test_weak_comparison_of_if_none_match() -> None:
    assert etag_matches('"abc"', 'W/"abc"')
    assert etag_matches('W/"x", W/"abc"', 'W/"abc"')
    assert etag_matches("*", 'W/"abc"')
    assert not etag_matches('W/"abd"', 'W/"abc"')
    assert not etag_matches(None, 'W/"abc"')


@contextlib.contextmanager
def _silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never says a word: a database that hangs."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                accepted.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(2)
        for conn in accepted:
            conn.close()
        listener.close()


def test_a_database_that_hangs_fails_open_to_this_process_within_a_second() -> None:
    with _silent_server() as port:
        limiter = SharedRateLimiter(3, f"postgresql://nobody@127.0.0.1:{port}/chaffee")
        limiter.open()
        try:
            started = time.monotonic()
            limiter.take("a")
            first = time.monotonic() - started
            started = time.monotonic()
            limiter.take("a")
            limiter.take("a")
            later = time.monotonic() - started
            # Still limited, by this process's own bucket.
            with pytest.raises(RateLimited):
                limiter.take("a")
        finally:
            limiter.close()
    assert first < 1.0, first
    # Until SHARED_LIMIT_RETRY_S passes, the warehouse is not asked again: no wait at all.
    assert later < 0.05 and SHARED_LIMIT_RETRY_S >= 1


def test_a_database_that_stops_answering_on_an_open_connection_fails_open_within_a_second(
    shared_warehouse: str,
) -> None:
    with UnixSocketProxy(unix_socket_of(shared_warehouse)) as proxy:
        limiter = SharedRateLimiter(3, tcp_url(shared_warehouse, proxy.port))
        limiter.open()
        try:
            limiter.take("192.0.2.90")  # connected, the key read: the warehouse is in use
            proxy.freeze()  # the next statement goes out and nothing comes back
            outcome: list[float] = []

            def one_request() -> None:
                started = time.monotonic()
                limiter.take("192.0.2.90")
                outcome.append(time.monotonic() - started)

            request = threading.Thread(target=one_request, daemon=True)
            request.start()
            request.join(5)
            assert outcome, "the request waited on the silent warehouse for more than 5 s"
            assert outcome[0] < 1.0, outcome
        finally:
            proxy.thaw()
            limiter.close()
