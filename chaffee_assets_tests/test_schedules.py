"""The retry plan on a real warehouse, and the daily schedule's run requests for a given clock."""

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg
import psycopg
import pytest

from chaffee_assets.definitions import defs
from chaffee_assets.defs.resources import WarehouseResource
from chaffee_assets.defs.schedules import REASON_TAG, daily_ingest_schedule, ingest_job
from chaffee_assets.ingest.retry_plan import partitions_to_retry

# The schedule's clock in these tests: 2025-09-22, the default 06:30 UTC tick.
TICK = datetime(2025, 9, 22, 6, 30, tzinfo=UTC)
TODAY = TICK.date()


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture
def conn(warehouse_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(warehouse_url, autocommit=True) as connection:
        yield connection


def _attempt(
    conn: psycopg.Connection,
    video_id: str,
    *,
    published: str,
    failure_class: str,
    attempted: str,
    retry_after: str | None = None,
) -> None:
    """A video published at `published` (UTC) whose last try ended in `failure_class`."""
    conn.execute(
        "INSERT INTO videos (video_id, source, title, published_at, url) VALUES (%s, 'youtube', %s, %s, %s)",
        (video_id, f"title of {video_id}", _utc(published), f"https://www.youtube.com/watch?v={video_id}"),
    )
    conn.execute(
        "INSERT INTO transcript_attempts (video_id, failure_class, message, attempted_at, retry_after)"
        " VALUES (%s, %s, %s, %s, %s)",
        (
            video_id,
            failure_class,
            "recorded by the test",
            _utc(attempted),
            _utc(retry_after) if retry_after else None,
        ),
    )


# -- the retry plan -----------------------------------------------------------------------------


def test_a_too_new_day_is_retried_only_once_its_caption_wait_is_over(conn: psycopg.Connection) -> None:
    _attempt(conn, "fresh000001", published="2025-09-20T18:00:00", failure_class="too_new",
             attempted="2025-09-20T19:00:00", retry_after="2025-09-22T18:00:00")  # fmt: skip
    assert partitions_to_retry(conn, _utc("2025-09-22T17:59:00"), 14) == []
    assert partitions_to_retry(conn, _utc("2025-09-22T18:00:00"), 14) == [
        (date(2025, 9, 20), "retry:too_new")
    ]


def test_a_blocked_day_is_retried_on_a_later_day_never_the_same_day(conn: psycopg.Connection) -> None:
    _attempt(conn, "blocked0001", published="2025-09-10T12:00:00", failure_class="blocked",
             attempted="2025-09-22T06:40:00")  # fmt: skip
    assert partitions_to_retry(conn, _utc("2025-09-22T23:59:00"), 14) == []
    assert partitions_to_retry(conn, _utc("2025-09-23T00:00:00"), 14) == [
        (date(2025, 9, 10), "retry:blocked")
    ]


def test_a_blocked_day_with_a_passed_back_off_still_waits_for_a_later_day(conn: psycopg.Connection) -> None:
    # An API back-off of an hour must not turn an hourly schedule into an hourly retry loop.
    _attempt(conn, "blocked0002", published="2025-09-10T12:00:00", failure_class="blocked",
             attempted="2025-09-22T06:40:00", retry_after="2025-09-22T07:40:00")  # fmt: skip
    assert partitions_to_retry(conn, _utc("2025-09-22T12:00:00"), 14) == []
    assert partitions_to_retry(conn, _utc("2025-09-23T06:30:00"), 14) == [
        (date(2025, 9, 10), "retry:blocked")
    ]


def test_an_over_budget_day_waits_for_its_retry_after(conn: psycopg.Connection) -> None:
    _attempt(conn, "overbudget1", published="2025-09-21T09:00:00", failure_class="over_budget",
             attempted="2025-09-20T22:00:00", retry_after="2025-09-23T00:00:00")  # fmt: skip
    assert partitions_to_retry(conn, TICK, 14) == []
    assert partitions_to_retry(conn, _utc("2025-09-23T06:30:00"), 14) == [
        (date(2025, 9, 21), "retry:over_budget")
    ]


@pytest.mark.parametrize("failure_class", ["engine_unavailable", "error"])
def test_engine_and_other_errors_are_retried_the_next_day(
    conn: psycopg.Connection, failure_class: str
) -> None:
    _attempt(conn, "broken00001", published="2025-09-01T09:00:00", failure_class=failure_class,
             attempted="2025-09-21T07:00:00")  # fmt: skip
    assert partitions_to_retry(conn, TICK, 14) == [(date(2025, 9, 1), f"retry:{failure_class}")]


@pytest.mark.parametrize("failure_class", ["no_captions", "unavailable"])
def test_final_outcomes_are_not_retried(conn: psycopg.Connection, failure_class: str) -> None:
    _attempt(conn, "final000001", published="2025-09-01T09:00:00", failure_class=failure_class,
             attempted="2025-09-02T07:00:00", retry_after="2025-09-03T00:00:00")  # fmt: skip
    assert partitions_to_retry(conn, TICK, 14) == []


def test_a_day_with_several_reasons_is_requested_once_naming_them_all(conn: psycopg.Connection) -> None:
    _attempt(conn, "sameDay0001", published="2025-09-05T08:00:00", failure_class="too_new",
             attempted="2025-09-05T09:00:00", retry_after="2025-09-07T08:00:00")  # fmt: skip
    _attempt(conn, "sameDay0002", published="2025-09-05T20:00:00", failure_class="blocked",
             attempted="2025-09-06T07:00:00")  # fmt: skip
    assert partitions_to_retry(conn, TICK, 14) == [(date(2025, 9, 5), "retry:blocked,too_new")]


def test_the_cap_keeps_the_oldest_days_and_excluded_days_do_not_count(conn: psycopg.Connection) -> None:
    for offset in range(6):
        day = date(2025, 9, 1) + timedelta(days=offset)
        _attempt(conn, f"blocked{offset:04d}", published=f"{day}T12:00:00", failure_class="blocked",
                 attempted="2025-09-20T07:00:00")  # fmt: skip
    assert [d for d, _ in partitions_to_retry(conn, TICK, 3)] == [
        date(2025, 9, 1),
        date(2025, 9, 2),
        date(2025, 9, 3),
    ]
    assert [d for d, _ in partitions_to_retry(conn, TICK, 3, exclude=[date(2025, 9, 2)])] == [
        date(2025, 9, 1), date(2025, 9, 3), date(2025, 9, 4),
    ]  # fmt: skip
    assert [d for d, _ in partitions_to_retry(conn, TICK, 14, earliest=date(2025, 9, 5))] == [
        date(2025, 9, 5), date(2025, 9, 6),
    ]  # fmt: skip
    assert partitions_to_retry(conn, TICK, 0) == []


def test_the_plan_needs_an_aware_clock(conn: psycopg.Connection) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        partitions_to_retry(conn, datetime(2025, 9, 22, 6, 30), 14)


# -- the daily schedule -------------------------------------------------------------------------


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as test_instance:
        yield test_instance


def _tick(instance: dg.DagsterInstance, warehouse_url: str, when: datetime = TICK) -> list[dg.RunRequest]:
    context = dg.build_schedule_context(
        scheduled_execution_time=when,
        instance=instance,
        resources={"warehouse": WarehouseResource(database_url=warehouse_url)},
        repository_def=defs.get_repository_def(),  # resolves partition keys against the code location
    )
    data = daily_ingest_schedule.evaluate_tick(context)
    assert data.skip_message is None
    return list(data.run_requests or [])


def _summary(requests: list[dg.RunRequest]) -> list[tuple[str | None, str | None, str]]:
    return [(r.partition_key, r.run_key, r.tags[REASON_TAG]) for r in requests]


def test_the_schedule_is_on_by_default_and_targets_the_ingest_job() -> None:
    assert daily_ingest_schedule.default_status is dg.DefaultScheduleStatus.RUNNING
    assert daily_ingest_schedule.job_name == ingest_job.name == "ingest_job"
    assert daily_ingest_schedule.cron_schedule == "30 6 * * *"
    assert daily_ingest_schedule.execution_timezone == "UTC"


def test_an_empty_warehouse_runs_yesterday_and_today(
    instance: dg.DagsterInstance, warehouse_url: str
) -> None:
    assert _summary(_tick(instance, warehouse_url)) == [
        ("2025-09-21", "2025-09-21:2025-09-22", "newest"),
        ("2025-09-22", "2025-09-22:2025-09-22", "newest"),
    ]


def test_the_tick_adds_the_due_retries_oldest_first_with_their_reasons(
    instance: dg.DagsterInstance, warehouse_url: str, conn: psycopg.Connection
) -> None:
    _attempt(conn, "waited00001", published="2025-09-19T15:00:00", failure_class="too_new",
             attempted="2025-09-19T16:00:00", retry_after="2025-09-21T15:00:00")  # fmt: skip
    _attempt(conn, "blocked0001", published="2025-09-15T10:00:00", failure_class="blocked",
             attempted="2025-09-21T06:35:00")  # fmt: skip
    _attempt(conn, "stillNew001", published="2025-09-21T22:00:00", failure_class="too_new",
             attempted="2025-09-21T23:00:00", retry_after="2025-09-23T22:00:00")  # fmt: skip
    _attempt(conn, "blockedNow1", published="2025-09-12T10:00:00", failure_class="blocked",
             attempted="2025-09-22T06:00:00")  # fmt: skip
    requests = _tick(instance, warehouse_url)
    assert _summary(requests) == [
        ("2025-09-21", "2025-09-21:2025-09-22", "newest"),
        ("2025-09-22", "2025-09-22:2025-09-22", "newest"),
        ("2025-09-15", "2025-09-15:2025-09-22", "retry:blocked"),
        ("2025-09-19", "2025-09-19:2025-09-22", "retry:too_new"),
    ]
    # The same tick evaluated again asks for the same run keys, so the daemon launches nothing twice.
    assert [r.run_key for r in _tick(instance, warehouse_url)] == [r.run_key for r in requests]


def test_the_number_of_retried_days_per_tick_is_capped(
    instance: dg.DagsterInstance,
    warehouse_url: str,
    conn: psycopg.Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for offset in range(20):
        day = date(2025, 8, 1) + timedelta(days=offset)
        _attempt(conn, f"blocked{offset:04d}", published=f"{day}T12:00:00", failure_class="blocked",
                 attempted="2025-09-21T07:00:00")  # fmt: skip
    retried = [r.partition_key for r in _tick(instance, warehouse_url) if r.tags[REASON_TAG] != "newest"]
    assert retried == [(date(2025, 8, 1) + timedelta(days=i)).isoformat() for i in range(14)]
    monkeypatch.setenv("CHAFFEE_RETRY_PARTITIONS_PER_TICK", "3")
    retried = [r.partition_key for r in _tick(instance, warehouse_url) if r.tags[REASON_TAG] != "newest"]
    assert retried == ["2025-08-01", "2025-08-02", "2025-08-03"]


def test_a_tick_in_another_timezone_still_means_utc_days(
    instance: dg.DagsterInstance, warehouse_url: str
) -> None:
    # 23:30 in Los Angeles on the 21st is 06:30 UTC on the 22nd.
    evening = datetime(2025, 9, 21, 23, 30, tzinfo=ZoneInfo("America/Los_Angeles"))
    assert [r.partition_key for r in _tick(instance, warehouse_url, evening)] == ["2025-09-21", "2025-09-22"]


def test_an_unreachable_warehouse_still_runs_the_newest_days(instance: dg.DagsterInstance) -> None:
    requests = _tick(instance, "postgresql://chaffee@127.0.0.1:1/nowhere")
    assert [(r.partition_key, r.tags[REASON_TAG]) for r in requests] == [
        ("2025-09-21", "newest"),
        ("2025-09-22", "newest"),
    ]


def test_a_tick_that_requests_nothing_says_why(instance: dg.DagsterInstance, warehouse_url: str) -> None:
    before_the_calendar = datetime(2014, 6, 1, 6, 30, tzinfo=UTC)  # the calendar starts 2015-01-01
    context = dg.build_schedule_context(
        scheduled_execution_time=before_the_calendar,
        instance=instance,
        resources={"warehouse": WarehouseResource(database_url=warehouse_url)},
        repository_def=defs.get_repository_def(),
    )
    data = daily_ingest_schedule.evaluate_tick(context)
    assert not data.run_requests
    assert data.skip_message == (
        "today (2014-06-01) is before the partition calendar starts (2015-01-01) "
        "and no earlier day is due for a retry"
    )
