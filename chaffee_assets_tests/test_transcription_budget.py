"""The daily spend budget: arithmetic, the ledger on a real PostgreSQL, and concurrent reservations."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime

import psycopg
import pytest

from chaffee_assets.ingest.outcomes import FailureClass, TranscriptFailure
from chaffee_assets.transcription import budget

NOON = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)


def test_cost_is_price_per_minute_rounded_up() -> None:
    assert budget.estimate_cost(60, 0.006) == pytest.approx(0.006)
    assert budget.estimate_cost(3600, 0.006) == pytest.approx(0.36)
    assert budget.estimate_cost(1, 0.006) == pytest.approx(0.0001)  # 0.0001 s of rounding never under-counts


def test_reaching_the_budget_is_allowed_crossing_it_is_not() -> None:
    assert not budget.would_exceed(4.0, 1.0, 5.0)
    assert budget.would_exceed(4.0, 1.0001, 5.0)


def test_budget_day_is_the_utc_day() -> None:
    late_evening_in_new_york = datetime.fromisoformat("2025-03-10T23:30:00-04:00")
    assert budget.utc_day(late_evening_in_new_york) == date(2025, 3, 11)
    assert budget.next_utc_midnight(NOON) == datetime(2025, 3, 11, tzinfo=UTC)


def test_over_budget_failure_is_retryable_tomorrow() -> None:
    with pytest.raises(TranscriptFailure) as caught:
        budget.check_budget(4.99, 0.02, 5.0, now=NOON, what="video abc")
    assert caught.value.failure_class is FailureClass.OVER_BUDGET
    assert caught.value.retry_after == datetime(2025, 3, 11, tzinfo=UTC)
    assert "video abc" in caught.value.message and "CHAFFEE_DAILY_BUDGET_USD" in caught.value.message


def test_spent_today_counts_only_this_utc_day(warehouse_url: str) -> None:
    with psycopg.connect(warehouse_url, autocommit=True) as conn:
        for when, usd in [
            ("2025-03-09T23:59:00Z", 1.0),
            ("2025-03-10T00:00:00Z", 0.25),
            ("2025-03-10T23:59:59Z", 0.5),
        ]:
            budget.record_spend(
                conn,
                video_id="v",
                engine="openai",
                model="whisper-1",
                audio_seconds=60,
                usd=usd,
                spent_at=datetime.fromisoformat(when),
            )
        assert budget.spent_today(conn, NOON) == pytest.approx(0.75)


def test_budgeted_calls_are_settled_one_ledger_row_each(warehouse_url: str) -> None:
    with psycopg.connect(warehouse_url, autocommit=True) as conn:
        with budget.budgeted(
            conn,
            budget_usd=5.0,
            estimate_usd=0.012,
            audio_seconds=120,
            video_id="vid",
            engine="openai",
            model="whisper-1",
            now=NOON,
            what="video vid",
        ) as spend:
            # While the calls run, the whole estimate is held against the budget.
            assert budget.spent_today(conn, NOON) == pytest.approx(0.012)
            spend.add(60, 0.006)
            spend.add(60, 0.006)
        rows = conn.execute(
            "SELECT video_id, engine, model, audio_seconds, usd FROM asr_spend ORDER BY spend_id"
        ).fetchall()
    assert [(r[0], r[1], r[2], r[3], float(r[4])) for r in rows] == [
        ("vid", "openai", "whisper-1", 60.0, 0.006),
        ("vid", "openai", "whisper-1", 60.0, 0.006),
    ]


def test_a_failed_body_releases_the_unspent_reservation(warehouse_url: str) -> None:
    with psycopg.connect(warehouse_url, autocommit=True) as conn:
        with (
            pytest.raises(RuntimeError),
            budget.budgeted(
                conn,
                budget_usd=5.0,
                estimate_usd=1.0,
                audio_seconds=10_000,
                video_id="vid",
                engine="openai",
                model="whisper-1",
                now=NOON,
                what="video vid",
            ) as spend,
        ):
            spend.add(600, 0.06)  # the first piece was paid for before the failure
            raise RuntimeError("the second upload failed")
        assert budget.spent_today(conn, NOON) == pytest.approx(0.06)


def test_two_runs_cannot_both_spend_the_last_headroom(warehouse_url: str) -> None:
    with psycopg.connect(warehouse_url, autocommit=True) as conn:
        budget.record_spend(
            conn, video_id="old", engine="openai", model="whisper-1", audio_seconds=1, usd=4.0, spent_at=NOON
        )
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def run(video_id: str) -> None:
        with psycopg.connect(warehouse_url, autocommit=True) as conn:
            barrier.wait()
            try:
                budget.reserve(
                    conn,
                    budget_usd=5.0,
                    estimate_usd=0.75,
                    audio_seconds=7500,
                    video_id=video_id,
                    engine="openai",
                    model="whisper-1",
                    now=NOON,
                    what=video_id,
                )
                outcomes.append("reserved")
            except TranscriptFailure as exc:
                outcomes.append(exc.failure_class.value)

    threads = [threading.Thread(target=run, args=(f"v{i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["over_budget", "reserved"]
    with psycopg.connect(warehouse_url) as conn:
        assert budget.spent_today(conn, NOON) == pytest.approx(4.75)


def test_reserve_refuses_a_connection_inside_a_transaction(warehouse_url: str) -> None:
    with psycopg.connect(warehouse_url) as conn:
        conn.execute("SELECT 1")  # opens an implicit transaction
        with pytest.raises(RuntimeError, match="autocommit"):
            budget.reserve(
                conn,
                budget_usd=5.0,
                estimate_usd=0.1,
                audio_seconds=1,
                video_id=None,
                engine="openai",
                model="whisper-1",
                now=NOON,
                what="x",
            )
