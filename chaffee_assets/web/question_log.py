"""The question log: each search and answer request written to the warehouse (`question_log`), off the
request path.

A request only puts a record on a bounded in-memory queue (no I/O); one writer thread per process
takes records off it and inserts them in batches on its own connection. A full queue or a warehouse
that refuses the insert drops records (counted in `/metrics`, warned about in the log at most once a
minute) and never slows or fails a search. No address is stored: the client becomes a SHA-256 of its
address and the day's salt (`question_log_salts`), which is deleted once the day is over.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime

import psycopg

from chaffee_assets.error_text import one_line
from chaffee_assets.web import metrics

log = logging.getLogger("chaffee_assets.web.question_log")

QUEUE_SIZE = 10_000
BATCH_SIZE = 200
WARN_EVERY_S = 60.0
RECONNECT_AFTER_S = 5.0


@dataclass(frozen=True)
class QuestionRecord:
    asked_at: datetime
    question: str
    mode: str
    kind: str  # 'search' or 'answer'
    published_from: date | None
    published_to: date | None
    hits: int
    best_similarity: float | None
    nothing_relevant: bool
    latency_ms: float
    client: str | None  # the address, hashed by the writer and never stored
    answer_cost_usd: float | None = None
    answer_cached: bool | None = None


_INSERT = """
INSERT INTO question_log (asked_at, question, mode, kind, published_from, published_to, hits,
                          best_similarity, nothing_relevant, latency_ms, answer_cost_usd, answer_cached,
                          client_hash)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
"""


class QuestionLog:
    """One process's writer. `record` never blocks and never raises; `close` writes what is queued."""

    def __init__(self, database_url: str, *, enabled: bool = True) -> None:
        self.database_url = database_url
        self.enabled = enabled
        self._queue: queue.Queue[QuestionRecord | None] = queue.Queue(QUEUE_SIZE)
        self._thread: threading.Thread | None = None
        self._conn: psycopg.Connection | None = None
        self._salts: dict[date, bytes] = {}
        self._last_warning = 0.0
        self._retry_at = 0.0
        self.written = 0

    def start(self) -> None:
        if self.enabled and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="question-log", daemon=True)
            self._thread.start()

    def record(self, entry: QuestionRecord) -> None:
        if not self.enabled:
            return
        try:
            self._queue.put_nowait(entry)
        except queue.Full:
            metrics.QUESTION_LOG_DROPPED.inc()
            self._warn("the question log's queue is full; a question was not recorded")

    def close(self, timeout_s: float = 10.0) -> None:
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join(timeout_s)
        self._thread = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def flush(self, timeout_s: float = 10.0) -> None:
        """Wait until every record queued so far is written or dropped (tests and shutdown)."""
        deadline = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)

    # -- the writer thread --------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            batch = [first]
            while len(batch) < BATCH_SIZE:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            records = [entry for entry in batch if entry is not None]
            try:
                if records:
                    self._write(records)
            finally:
                for _ in batch:
                    self._queue.task_done()
            if len(records) < len(batch):
                return  # close() asked to stop

    def _write(self, records: list[QuestionRecord]) -> None:
        if time.monotonic() < self._retry_at:
            metrics.QUESTION_LOG_DROPPED.inc(len(records))
            return
        try:
            conn = self._connection()
            with conn.transaction():
                rows = [self._row(conn, entry) for entry in records]
                with conn.cursor() as cur:
                    cur.executemany(_INSERT, rows)
            self.written += len(records)
        except psycopg.Error as exc:
            metrics.QUESTION_LOG_DROPPED.inc(len(records))
            self._warn(f"{len(records)} questions not recorded: {one_line(exc)}")
            if self._conn is not None and self._conn.broken:
                self._conn = None
                self._retry_at = time.monotonic() + RECONNECT_AFTER_S

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            try:
                self._conn = psycopg.connect(self.database_url, autocommit=True, connect_timeout=5)
            except psycopg.Error:
                self._retry_at = time.monotonic() + RECONNECT_AFTER_S
                raise
        return self._conn

    def _row(self, conn: psycopg.Connection, entry: QuestionRecord) -> tuple[object, ...]:
        return (
            entry.asked_at,
            entry.question,
            entry.mode,
            entry.kind,
            entry.published_from,
            entry.published_to,
            entry.hits,
            entry.best_similarity,
            entry.nothing_relevant,
            entry.latency_ms,
            entry.answer_cost_usd,
            entry.answer_cached,
            self._client_hash(conn, entry),
        )

    def _client_hash(self, conn: psycopg.Connection, entry: QuestionRecord) -> str | None:
        if not entry.client:
            return None
        day = entry.asked_at.astimezone(UTC).date()
        salt = self._salts.get(day)
        if salt is None:
            salt = day_salt(conn, day)
            self._salts = {day: salt}
        return hashlib.sha256(salt + entry.client.encode("utf-8")).hexdigest()[:32]

    def _warn(self, message: str) -> None:
        now = time.monotonic()
        if now - self._last_warning >= WARN_EVERY_S:
            self._last_warning = now
            log.warning(message)


def day_salt(conn: psycopg.Connection, day: date) -> bytes:
    """The salt of `day` (created by whichever process needs it first); earlier days' salts are deleted."""
    conn.execute(
        "INSERT INTO question_log_salts (day, salt) VALUES (%s, %s) ON CONFLICT (day) DO NOTHING",
        (day, secrets.token_bytes(32)),
    )
    conn.execute("DELETE FROM question_log_salts WHERE day < %s", (day,))
    return bytes(conn.execute("SELECT salt FROM question_log_salts WHERE day = %s", (day,)).fetchone()[0])
