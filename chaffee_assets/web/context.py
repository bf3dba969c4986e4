"""What one server process holds for its lifetime: settings, the way to the warehouse (a connection
pool behind a circuit breaker), the loaded embedding model, the rate limiter, the answer writer and its
pool of threads, and a short-lived count of what is indexed."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg

from chaffee_assets.retrieval.embedder import Embedder, canonical_model_name
from chaffee_assets.search import embedder_for
from chaffee_assets.web.answers.pool import AnswerPool
from chaffee_assets.web.answers.writer import AnswerWriter
from chaffee_assets.web.moments import find_hits as find_moment_hits
from chaffee_assets.web.protection import SharedRateLimiter
from chaffee_assets.web.queries import SearchRequest
from chaffee_assets.web.settings import WebSettings
from chaffee_assets.web.warehouse_gate import WarehouseGate

STATS_TTL_S = 30.0


@dataclass(frozen=True)
class IndexStats:
    videos: int
    segments: int
    embedded_segments: int

    @property
    def empty(self) -> bool:
        return self.segments == 0


def _configure(conn: psycopg.Connection) -> None:
    from chaffee_assets.warehouse.server import register_vector_types

    register_vector_types(conn)


class WebContext:
    def __init__(self, settings: WebSettings, database_url: str) -> None:
        self.settings = settings
        self.database_url = database_url
        self.warehouse = WarehouseGate(database_url, pool_size=settings.pool_size, configure=_configure)
        # One limit per client across every process on this warehouse (web/protection.py).
        self.limiter = SharedRateLimiter(settings.rate_limit_per_minute, database_url)
        self.answers = AnswerWriter(settings, connection=self.connection, find_hits=self.find_hits)
        self.answer_pool = AnswerPool(settings.answer_workers, settings.answer_queue)
        self._embedder: Embedder | None = None
        self._stats: tuple[float, IndexStats] | None = None
        self._stats_lock = threading.Lock()

    def open(self) -> None:
        self.warehouse.open()
        self.limiter.open()

    def close(self) -> None:
        self.answer_pool.close()
        self.limiter.close()
        self.warehouse.close()

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        with self.warehouse.connection() as conn:
            yield conn

    @property
    def embedder(self) -> Embedder:
        """The query embedding model, loaded once for the process (`embedder_for` keeps one per model)."""
        if self._embedder is None:
            self._embedder = embedder_for(
                self.settings.embedding_model, threads=self.settings.embedding_threads
            )
        return self._embedder

    def load_embedder(self) -> None:
        """Load the model and run it once, so the first visitor does not wait for it."""
        self.embedder.encode(["warm up"])

    def find_hits(self, conn: psycopg.Connection, request: SearchRequest) -> list[dict[str, object]]:
        embedder = self.embedder if request.mode != "text" else None
        return find_moment_hits(conn, request, model=self.settings.embedding_model, embedder=embedder)

    def stats(self, *, fresh: bool = False) -> IndexStats:
        """How much is indexed, counted at most every STATS_TTL_S seconds."""
        with self._stats_lock:
            if not fresh and self._stats and time.monotonic() - self._stats[0] < STATS_TTL_S:
                return self._stats[1]
        with self.connection() as conn:
            row = conn.execute(
                "SELECT (SELECT count(*) FROM videos), (SELECT count(*) FROM segments), "
                "(SELECT count(*) FROM segment_embeddings WHERE model = %s)",
                (canonical_model_name(self.settings.embedding_model),),
            ).fetchone()
        stats = IndexStats(int(row[0]), int(row[1]), int(row[2]))
        with self._stats_lock:
            self._stats = (time.monotonic(), stats)
        return stats
