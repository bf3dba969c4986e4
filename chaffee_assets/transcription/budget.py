"""The daily spend budget for paid speech recognition: cost arithmetic and the `asr_spend` ledger.

The check and the spend are made safe against concurrent runs by *reserve-then-settle*: under a
transaction-scoped advisory lock, today's spend is summed and, if the estimate fits, a ledger row for
the estimate is inserted and committed before any paid call is made. Two runs therefore cannot both
pass the check with the same headroom. After the calls, the reservation is replaced by one row per
call actually made (nothing, if none was). A process that dies in between leaves its estimate in the
ledger: the budget errs on the side of spending less, never more.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import psycopg

from chaffee_assets.ingest.outcomes import FailureClass, TranscriptFailure
from chaffee_assets.settings import DEFAULT_DAILY_BUDGET_USD  # noqa: F401 - re-exported
from chaffee_assets.transcription import registry

DEFAULT_PRICE_PER_MINUTE_USD = registry.source(registry.OPENAI).price_per_minute_usd  # whisper-1's list price
# One lock for the whole ledger: paid calls are few, so serialising the check is cheap.
_LEDGER_LOCK_KEY = 7_236_284_503_187_465_001


def estimate_cost(audio_seconds: float, price_per_minute: float) -> float:
    """USD for `audio_seconds` at `price_per_minute`, rounded *up* to the ledger's 4 decimals."""
    if audio_seconds < 0 or price_per_minute < 0:
        raise ValueError("audio seconds and price must not be negative")
    return math.ceil(audio_seconds / 60 * price_per_minute * 10_000 - 1e-9) / 10_000


def utc_day(now: datetime) -> date:
    """The budget's day: the UTC calendar day of `now` (naive datetimes are taken as UTC)."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return now.astimezone(UTC).date()


def next_utc_midnight(now: datetime) -> datetime:
    """When the next budget day starts."""
    return datetime.combine(utc_day(now) + timedelta(days=1), datetime.min.time(), tzinfo=UTC)


def would_exceed(spent_usd: float, estimate_usd: float, budget_usd: float) -> bool:
    """Whether spending `estimate_usd` on top of `spent_usd` crosses `budget_usd` (reaching it is allowed)."""
    return spent_usd + estimate_usd > budget_usd + 1e-9


def check_budget(
    spent_usd: float, estimate_usd: float, budget_usd: float, *, now: datetime, what: str
) -> None:
    """Raise OVER_BUDGET, retryable the next UTC day, if the call would cross the budget."""
    if would_exceed(spent_usd, estimate_usd, budget_usd):
        raise TranscriptFailure(
            FailureClass.OVER_BUDGET,
            f"transcribing {what} would cost ${estimate_usd:.4f} on top of ${spent_usd:.4f} already spent "
            f"on {utc_day(now)} (UTC), over the daily budget of ${budget_usd:.2f}; it will be retried "
            "after midnight UTC, or raise CHAFFEE_DAILY_BUDGET_USD",
            retry_after=next_utc_midnight(now),
        )


def spent_today(conn: psycopg.Connection, now: datetime) -> float:
    """USD in the ledger for `now`'s UTC day (reservations included)."""
    row = conn.execute(
        "SELECT coalesce(sum(usd), 0) FROM asr_spend WHERE (spent_at AT TIME ZONE 'UTC')::date = %s",
        (utc_day(now),),
    ).fetchone()
    return float(row[0])


def record_spend(
    conn: psycopg.Connection,
    *,
    video_id: str | None,
    engine: str,
    model: str,
    audio_seconds: float,
    usd: float,
    spent_at: datetime | None = None,
) -> int:
    """Append one ledger row; returns its id. Runs in the caller's transaction, if any."""
    row = conn.execute(
        """
        INSERT INTO asr_spend (spent_at, video_id, engine, model, audio_seconds, usd)
        VALUES (coalesce(%s, now()), %s, %s, %s, %s, %s)
        RETURNING spend_id
        """,
        (spent_at, video_id, engine, model, audio_seconds, usd),
    ).fetchone()
    return int(row[0])


@dataclass
class SpendSession:
    """The calls made under one reservation; `add` each as soon as it has been paid for."""

    video_id: str | None
    engine: str
    model: str
    spent_at: datetime
    calls: list[tuple[float, float]] = field(default_factory=list)  # (audio seconds, usd)

    def add(self, audio_seconds: float, usd: float) -> None:
        self.calls.append((audio_seconds, usd))

    @property
    def total_usd(self) -> float:
        return sum(usd for _, usd in self.calls)


def reserve(
    conn: psycopg.Connection,
    *,
    budget_usd: float,
    estimate_usd: float,
    audio_seconds: float,
    video_id: str | None,
    engine: str,
    model: str,
    now: datetime,
    what: str,
) -> int:
    """Check the budget and, if the estimate fits, commit a reservation row; returns its id.

    `conn` must not be inside a transaction already, or the reservation would not be visible to
    other runs until the caller commits.
    """
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        raise RuntimeError("reserve() needs a connection outside any transaction (use autocommit=True)")
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LEDGER_LOCK_KEY,))
        check_budget(spent_today(conn, now), estimate_usd, budget_usd, now=now, what=what)
        return record_spend(
            conn,
            video_id=video_id,
            engine=engine,
            model=model,
            audio_seconds=audio_seconds,
            usd=estimate_usd,
            spent_at=now,
        )


def settle(conn: psycopg.Connection, reservation_id: int, session: SpendSession) -> None:
    """Replace the reservation by one ledger row per call actually made, in one transaction."""
    with conn.transaction():
        conn.execute("DELETE FROM asr_spend WHERE spend_id = %s", (reservation_id,))
        for audio_seconds, usd in session.calls:
            record_spend(
                conn,
                video_id=session.video_id,
                engine=session.engine,
                model=session.model,
                audio_seconds=audio_seconds,
                usd=usd,
                spent_at=session.spent_at,
            )


@contextmanager
def budgeted(
    conn: psycopg.Connection,
    *,
    budget_usd: float,
    estimate_usd: float,
    audio_seconds: float,
    video_id: str | None,
    engine: str,
    model: str,
    now: datetime,
    what: str,
) -> Iterator[SpendSession]:
    """Reserve the estimate, let the body make its calls, then settle what was paid — also on error."""
    reservation = reserve(
        conn,
        budget_usd=budget_usd,
        estimate_usd=estimate_usd,
        audio_seconds=audio_seconds,
        video_id=video_id,
        engine=engine,
        model=model,
        now=now,
        what=what,
    )
    session = SpendSession(video_id=video_id, engine=engine, model=model, spent_at=now)
    try:
        yield session
    finally:
        settle(conn, reservation, session)
