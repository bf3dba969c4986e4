"""The one place requests to YouTube are spaced out and retried.

Every request the source makes (an HTTP GET of the feed or the Data API, a yt-dlp extraction or
download, a youtube-transcript-api call) waits its turn here, at least `interval_s` after the
previous one, and a request that failed in a way that can pass (throttling, a dropped connection, a
5xx) is tried again after an exponential backoff, at most `max_retries` times. yt-dlp's own retries
and request sleeps are switched off, and the assets' retry policy does not retry YouTube's answers,
so a throttled IP is never asked dozens of times by stacked retry loops: once this gives up, the
video is recorded (blocked, retried on a later day) or the listing fails in one line.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def never(exc: Exception) -> bool:
    return False


class Pacer:
    """Spacing and retries for one source's requests (see the module docstring)."""

    def __init__(
        self,
        interval_s: float,
        max_retries: int,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if interval_s < 0 or max_retries < 0:
            raise ValueError("the request interval and the retry count must not be negative")
        self.interval_s = interval_s
        self.max_retries = max_retries
        self._sleep = sleep
        self._clock = clock
        self._last_request: float | None = None

    def wait_turn(self) -> None:
        """Keep successive requests at least `interval_s` apart."""
        now = self._clock()
        if self._last_request is not None:
            wait = self.interval_s - (now - self._last_request)
            if wait > 0:
                self._sleep(wait)
        self._last_request = self._clock()

    def backoff_seconds(self, attempt: int) -> float:
        """The wait before retry number `attempt + 1`: interval (at least 1 s) x 2^attempt."""
        return max(self.interval_s, 1.0) * (2**attempt)

    def call(self, request: Callable[[], T], *, retry_if: Callable[[Exception], bool] = never) -> T:
        """`request()` in its turn; retried after a backoff while `retry_if(error)` says it can pass.

        The last error is raised as it is when the retries are spent or the error is final.
        """
        for attempt in range(self.max_retries + 1):
            self.wait_turn()
            try:
                return request()
            except Exception as exc:
                if attempt >= self.max_retries or not retry_if(exc):
                    raise
                self._sleep(self.backoff_seconds(attempt))
        raise AssertionError("unreachable")
