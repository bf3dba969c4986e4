"""The daily answer budget and the answer cache, in the warehouse (`answer_spend`, `answers`).

The budget works as speech recognition's does (`chaffee_assets.transcription.budget`): under a
transaction-scoped advisory lock, today's spend is summed and, if the estimate fits, a reservation
row is committed *before* the model is called, so concurrent requests in any number of server
processes cannot both pass the check with the same headroom. After the call the reservation is
settled to what the model reported, deleted when the model refused the call (nothing was billed),
or kept at its estimate when the outcome is unknown: the budget errs towards spending less.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg

from chaffee_assets.transcription.budget import next_utc_midnight, utc_day, would_exceed

# Its own lock: answers and transcriptions have separate budgets and need not wait for each other.
_ANSWER_LEDGER_LOCK_KEY = 7_236_284_503_187_465_002


class BudgetSpent(Exception):
    """Today's answer budget cannot cover another call."""

    def __init__(self, spent_usd: float, estimate_usd: float, budget_usd: float, now: datetime) -> None:
        self.retry_at = next_utc_midnight(now)
        super().__init__(
            f"today's answer budget of ${budget_usd:.2f} is spent (${spent_usd:.4f} used on {utc_day(now)} UTC, "
            f"an answer needs up to ${estimate_usd:.4f}); answers return after midnight UTC"
        )


def spent_today(conn: psycopg.Connection, now: datetime) -> float:
    """USD in the answer ledger for `now`'s UTC day, reservations included."""
    row = conn.execute(
        "SELECT coalesce(sum(usd), 0) FROM answer_spend WHERE (spent_at AT TIME ZONE 'UTC')::date = %s",
        (utc_day(now),),
    ).fetchone()
    return float(row[0])


def reserve(
    conn: psycopg.Connection,
    *,
    budget_usd: float,
    estimate_usd: float,
    model: str,
    question_key: str,
    now: datetime,
) -> int:
    """Commit a reservation of `estimate_usd` if it fits today's budget; returns its id, or raises BudgetSpent.

    `conn` must be outside any transaction, so the reservation is visible to others at once.
    """
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        raise RuntimeError("reserve() needs a connection outside any transaction (use autocommit=True)")
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_ANSWER_LEDGER_LOCK_KEY,))
        spent = spent_today(conn, now)
        if would_exceed(spent, estimate_usd, budget_usd):
            raise BudgetSpent(spent, estimate_usd, budget_usd, now)
        row = conn.execute(
            "INSERT INTO answer_spend (spent_at, model, question_key, usd) VALUES (%s, %s, %s, %s) "
            "RETURNING spend_id",
            (now, model, question_key, estimate_usd),
        ).fetchone()
    return int(row[0])


def settle(
    conn: psycopg.Connection, spend_id: int, *, input_tokens: int, output_tokens: int, usd: float
) -> None:
    """Replace the reservation's estimate by what the call cost."""
    conn.execute(
        "UPDATE answer_spend SET status = 'settled', input_tokens = %s, output_tokens = %s, usd = %s "
        "WHERE spend_id = %s",
        (input_tokens, output_tokens, usd, spend_id),
    )


def release(conn: psycopg.Connection, spend_id: int) -> None:
    """Drop a reservation whose call the model refused with an error status: nothing was billed."""
    conn.execute("DELETE FROM answer_spend WHERE spend_id = %s", (spend_id,))


def mark_uncertain(conn: psycopg.Connection, spend_id: int) -> None:
    """Keep the estimate of a call whose outcome is unknown (a timeout or a dropped connection)."""
    conn.execute("UPDATE answer_spend SET status = 'uncertain' WHERE spend_id = %s", (spend_id,))


@dataclass(frozen=True)
class StoredAnswer:
    question: str
    model: str
    answer: str
    answered: bool
    citations: list[dict[str, object]]
    cost_usd: float
    created_at: datetime


def cached_answer(conn: psycopg.Connection, question_key: str, *, max_age: timedelta) -> StoredAnswer | None:
    """The newest answer to this question written within `max_age`, if any."""
    row = conn.execute(
        """
        SELECT question, model, answer, answered, citations, cost_usd, created_at
        FROM answers
        WHERE question_key = %s AND created_at > now() - %s
        ORDER BY created_at DESC
        LIMIT 1
        """,
        (question_key, max_age),
    ).fetchone()
    if row is None:
        return None
    question, model, answer, answered, citations, cost, created_at = row
    return StoredAnswer(question, model, answer, answered, list(citations), float(cost), created_at)


def store_answer(
    conn: psycopg.Connection,
    *,
    question_key: str,
    question: str,
    model: str,
    answer: str,
    answered: bool,
    citations: list[dict[str, object]],
    passages: list[dict[str, object]],
    input_tokens: int | None,
    output_tokens: int | None,
    cost_usd: float,
    spend_id: int | None,
) -> None:
    conn.execute(
        """
        INSERT INTO answers (question_key, question, model, answer, answered, citations, passages,
                             input_tokens, output_tokens, cost_usd, spend_id)
        VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s::jsonb, %s, %s, %s, %s)
        """,
        (
            question_key,
            question,
            model,
            answer,
            answered,
            json.dumps(citations, ensure_ascii=False),
            json.dumps(passages, ensure_ascii=False),
            input_tokens,
            output_tokens,
            cost_usd,
            spend_id,
        ),
    )
