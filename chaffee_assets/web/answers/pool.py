"""The answer pool: a few threads of their own and a short queue, so a slow or hung chat model holds
those and nothing else. Searches run on the server's other threads and never wait behind answers."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from chaffee_assets.web.answers.writer import AnswersUnavailable

T = TypeVar("T")

# What a client is told to wait when the pool is full: about one answer's writing time.
BUSY_RETRY_AFTER_S = 5


class AnswerPool:
    """Runs at most `workers` answers at once with at most `queue` more waiting; beyond that a request
    is refused at once with AnswersUnavailable (a 503 with Retry-After), never queued without bound."""

    def __init__(self, workers: int, queue: int) -> None:
        self.capacity = workers + queue
        self._slots = threading.BoundedSemaphore(self.capacity)
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="answer")

    def submit(self, work: Callable[..., T], *args: object) -> Future[T]:
        if not self._slots.acquire(blocking=False):
            raise AnswersUnavailable(
                f"answers are busy ({self.capacity} being written or waiting); try again in a few seconds",
                retry_after_s=BUSY_RETRY_AFTER_S,
            )

        def run() -> T:
            try:
                return work(*args)
            finally:
                self._slots.release()

        try:
            return self._executor.submit(run)
        except BaseException:
            self._slots.release()
            raise

    async def run(self, work: Callable[..., T], *args: object) -> T:
        """`work(*args)` on the pool, awaited without holding any of the server's own threads."""
        return await asyncio.wrap_future(self.submit(work, *args))

    def run_blocking(self, work: Callable[..., T], *args: object) -> T:
        """`work(*args)` on the pool, for a caller already on a thread of its own."""
        return self.submit(work, *args).result()

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
