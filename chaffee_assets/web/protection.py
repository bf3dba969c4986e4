"""Protection: a per-client rate limit shared by every server process through the warehouse, the
security headers every response carries, and caching headers a CDN can use on search results."""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("chaffee_assets.web")

SEARCH_COST = 1
# An answer may cost money and takes the model seconds: it counts as five searches.
ANSWER_COST = 5
_MAX_TRACKED_CLIENTS = 100_000

# The page's own scripts, styles and requests only; the YouTube player (privacy-enhanced domain)
# is the one thing from outside, and only as a frame.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "frame-src https://www.youtube-nocookie.com",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    # The YouTube player refuses to play without a referrer; send the origin, never the search.
    "referrer-policy": "strict-origin-when-cross-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
    "cross-origin-opener-policy": "same-origin",
}


class RateLimited(Exception):
    def __init__(self, retry_after_s: int, limit_per_minute: int) -> None:
        super().__init__(
            f"too many requests: this server allows {limit_per_minute} per minute per client "
            f"(an answer counts as {ANSWER_COST}); retry in {retry_after_s} s"
        )
        self.retry_after_s = retry_after_s


class RateLimiter:
    """A token bucket per client: `per_minute` tokens, refilled evenly, so a burst of a minute's worth
    is allowed and the long-run rate is `per_minute`. Kept in this process's memory."""

    def __init__(self, per_minute: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self._rate = per_minute / 60.0
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, when counted)
        self._lock = threading.Lock()

    def take(self, client: str, cost: int = SEARCH_COST) -> None:
        """Spend `cost` tokens of `client`'s bucket, or raise RateLimited with the seconds to wait."""
        # A bucket never holds more than a minute's worth: a costlier request takes all of it.
        cost = min(cost, self.per_minute)
        now = self._clock()
        with self._lock:
            tokens, then = self._buckets.get(client, (float(self.per_minute), now))
            tokens = min(float(self.per_minute), tokens + (now - then) * self._rate)
            if tokens < cost:
                self._buckets[client] = (tokens, now)
                wait = math.ceil((cost - tokens) / self._rate)
                raise RateLimited(max(1, wait), self.per_minute)
            self._buckets[client] = (tokens - cost, now)
            if len(self._buckets) > _MAX_TRACKED_CLIENTS:
                self._forget_idle(now)

    def _forget_idle(self, now: float) -> None:
        # A client idle for a minute has a full bucket again: forgetting it changes nothing.
        idle = [c for c, (_, then) in self._buckets.items() if now - then >= 60.0]
        for client in idle:
            del self._buckets[client]


# How long the shared limiter waits for a connection, and the server-side limit of each statement.
SHARED_LIMIT_TIMEOUT_S = 0.5
# The longest the shared limiter may hold a request up, whatever the warehouse or the network does
# (a server that stopped answering on an open connection never trips a server-side timeout).
SHARED_LIMIT_DEADLINE_S = 0.9
# After the warehouse failed to answer, the limiter counts in this process alone this long before it
# asks the warehouse again, so a database outage costs one slow request per interval, not every one.
SHARED_LIMIT_RETRY_S = 5.0
# Buckets idle this long are full again: deleting them changes nothing.
_FULL_AFTER_IDLE = "60 seconds"
_PRUNE_EVERY_S = 60.0

# One statement per request: refill the client's bucket by the time since it was last touched, and
# spend `cost` only when that many tokens are there. The row lock of the upsert serialises one
# client's requests across every process; a refusal returns no row.
_SPEND = """
INSERT INTO web_rate_limit AS bucket (client, tokens, updated_at)
VALUES (%(client)s, %(capacity)s - %(cost)s, statement_timestamp())
ON CONFLICT (client) DO UPDATE
   SET tokens = least(%(capacity)s, bucket.tokens
                      + extract(epoch FROM statement_timestamp() - bucket.updated_at) * %(rate)s) - %(cost)s,
       updated_at = statement_timestamp()
 WHERE least(%(capacity)s, bucket.tokens
             + extract(epoch FROM statement_timestamp() - bucket.updated_at) * %(rate)s) >= %(cost)s
RETURNING tokens
"""
_TOKENS_NOW = """
SELECT least(%(capacity)s, tokens + extract(epoch FROM statement_timestamp() - updated_at) * %(rate)s)
  FROM web_rate_limit WHERE client = %(client)s
"""
_PRUNE = (
    f"DELETE FROM web_rate_limit WHERE updated_at < statement_timestamp() - interval '{_FULL_AFTER_IDLE}'"
)


class SharedRateLimiter:
    """The same token bucket as RateLimiter, kept in the warehouse's `web_rate_limit` table, so every
    process behind a load balancer (or a serverless platform's instances) spends one limit per client.

    It fails open, to this process's own bucket: when the warehouse does not answer within
    SHARED_LIMIT_DEADLINE_S, the request is limited by RateLimiter in memory instead, and the warehouse
    is asked again after SHARED_LIMIT_RETRY_S. Open, because the limit protects the warehouse and the
    answer budget, and both are out of reach during the outage anyway (a search then fails with 503
    and an answer's budget reservation refuses to spend); closed would turn a slow database into
    refusals of requests that could have been served. Each process still holds every client to the
    limit, so an outage at most multiplies it by the number of processes.
    """

    def __init__(self, per_minute: int, database_url: str, *, fallback: RateLimiter | None = None) -> None:
        self.per_minute = per_minute
        self._rate = per_minute / 60.0
        self._fallback = fallback or RateLimiter(per_minute)
        self._pool = ConnectionPool(
            database_url,
            min_size=1,
            max_size=4,
            kwargs={
                "autocommit": True,
                "connect_timeout": 2,
                # A statement waiting on a locked bucket or a stuck server gives up instead of queueing.
                "options": f"-c statement_timeout={int(SHARED_LIMIT_TIMEOUT_S * 1000)}",
            },
            timeout=SHARED_LIMIT_TIMEOUT_S,
            open=False,
            name="chaffee-rate-limit",
        )
        self._lock = threading.Lock()
        self._local_until = 0.0
        self._next_prune = 0.0
        self._key: bytes | None = None  # the warehouse's hashing key, read on first use
        # The warehouse is asked on these threads, so a request waits at most the deadline for it.
        self._asker = ThreadPoolExecutor(max_workers=4, thread_name_prefix="rate-limit")

    def open(self) -> None:
        # Not waiting: the server starts even when the warehouse is slow; the first requests then
        # count locally until a connection is there.
        self._pool.open(wait=False)

    def close(self) -> None:
        self._asker.shutdown(wait=False, cancel_futures=True)
        self._pool.close(timeout=1.0)

    def bucket_of(self, client: str) -> str:
        """The bucket's key for `client`: a keyed hash, the same in every process, never the address."""
        if self._key is None:
            raise RuntimeError("the limiter has not read the warehouse's key yet")
        return hashlib.blake2b(client.encode(), key=self._key[:64], digest_size=16).hexdigest()

    def take(self, client: str, cost: int = SEARCH_COST) -> None:
        """Spend `cost` of `client`'s shared bucket, or raise RateLimited with the seconds to wait."""
        cost = min(cost, self.per_minute)
        now = time.monotonic()
        if now < self._local_until:
            self._fallback.take(client, cost)
            return
        asked = self._asker.submit(self._spend_shared, client, cost, now)
        try:
            asked.result(timeout=SHARED_LIMIT_DEADLINE_S)
        except (psycopg.Error, PoolTimeout, FutureTimeout) as exc:
            asked.cancel()
            with self._lock:
                self._local_until = time.monotonic() + SHARED_LIMIT_RETRY_S
            log.warning(
                "rate limit: the warehouse did not answer (%s); counting in this process for %.0f s",
                (str(exc).strip().splitlines() or [type(exc).__name__])[0],
                SHARED_LIMIT_RETRY_S,
            )
            self._fallback.take(client, cost)

    def _spend_shared(self, client: str, cost: int, now: float) -> None:
        """One request's spending in the warehouse (on an asker thread); raises RateLimited."""
        with self._pool.connection(timeout=SHARED_LIMIT_TIMEOUT_S) as conn:
            if self._key is None:
                self._key = conn.execute("SELECT key FROM web_rate_limit_key").fetchone()[0].encode()
            params = {
                "client": self.bucket_of(client),
                "capacity": float(self.per_minute),
                "cost": cost,
                "rate": self._rate,
            }
            spent = conn.execute(_SPEND, params).fetchone()
            if spent is None:
                row = conn.execute(_TOKENS_NOW, params).fetchone()
                tokens = float(row[0]) if row else 0.0
                wait = math.ceil(max(cost - tokens, 0.0) / self._rate)
                raise RateLimited(max(1, wait), self.per_minute)
            if now >= self._next_prune:
                self._next_prune = now + _PRUNE_EVERY_S
                conn.execute(_PRUNE)


# Search results are the same for everyone who asks the same question, so a CDN or the browser may
# keep them briefly: a minute at a shared cache, half a minute in a browser, revalidated by ETag.
# New videos reach the index once a day, so a minute's staleness costs nothing. Pages (which carry the
# answer box), answers and every refusal stay `no-store`.
CDN_CACHEABLE_PATHS = frozenset({"/api/search"})
SEARCH_CACHE_CONTROL = "public, max-age=30, s-maxage=60"


class SecurityHeadersMiddleware:
    """Adds the security headers to every HTTP response, long caching to versioned static files, and
    short shared caching with an ETag (answering 304 to a matching If-None-Match) to search results."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        static = path.startswith("/static/")
        cacheable = path in CDN_CACHEABLE_PATHS and scope["method"] in ("GET", "HEAD")
        held: Message | None = None  # a cacheable success's start, sent once its body is known
        body = bytearray()

        def with_headers(message: Message, cache: str, extra: list[tuple[bytes, bytes]] = ()) -> Message:
            headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"cache-control"]
            headers += [(name.encode(), value.encode()) for name, value in SECURITY_HEADERS.items()]
            headers.append((b"cache-control", cache.encode()))
            headers += extra
            return {**message, "headers": headers}

        async def send_with_headers(message: Message) -> None:
            nonlocal held
            if message["type"] == "http.response.start":
                if cacheable and message["status"] == 200:
                    held = message
                    return
                # Static URLs carry a content hash (?v=…), so they may be cached for long.
                await send(with_headers(message, "public, max-age=86400" if static else "no-store"))
                return
            if held is None:
                await send(message)
                return
            body.extend(message.get("body", b""))
            if message.get("more_body"):
                return
            await _send_validated(held, bytes(body))

        async def _send_validated(start: Message, content: bytes) -> None:
            etag = 'W/"' + hashlib.sha256(content).hexdigest()[:32] + '"'
            extra = [(b"etag", etag.encode()), (b"vary", b"Accept-Encoding")]
            if etag_matches(Headers(scope=scope).get("if-none-match"), etag):
                kept = [(k, v) for k, v in start.get("headers", []) if k.lower() not in _ENTITY_HEADERS]
                await send(
                    with_headers({**start, "status": 304, "headers": kept}, SEARCH_CACHE_CONTROL, extra)
                )
                await send({"type": "http.response.body", "body": b""})
                return
            await send(with_headers(start, SEARCH_CACHE_CONTROL, extra))
            await send({"type": "http.response.body", "body": content})

        await self.app(scope, receive, send_with_headers)


# Headers a 304 leaves out: it has no body.
_ENTITY_HEADERS = frozenset({b"content-length", b"content-type", b"etag"})


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110's weak comparison of an If-None-Match list with the response's ETag."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    wanted = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == wanted for tag in if_none_match.split(","))
