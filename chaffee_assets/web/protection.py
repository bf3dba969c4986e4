"""Protection: a per-client rate limit and the security headers every response carries."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

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


class SecurityHeadersMiddleware:
    """Adds the security headers to every HTTP response, and long caching to versioned static files."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"cache-control"]
                headers += [(name.encode(), value.encode()) for name, value in SECURITY_HEADERS.items()]
                # Static URLs carry a content hash (?v=…), so they may be cached for long; pages,
                # answers and search results are never cached by shared caches.
                cache = "public, max-age=86400" if static else "no-store"
                headers.append((b"cache-control", cache.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
