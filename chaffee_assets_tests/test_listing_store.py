"""The remembered channel listing, against a real migrated PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest

from chaffee_assets.ingest import listing_store
from chaffee_assets.ingest.ytdlp_metadata import ListingEntry, read_flat_listing
from chaffee_assets_tests.conftest import shared_path

CHANNEL = "https://www.youtube.com/@anthonychaffeemd"


@pytest.fixture
def conn(warehouse_url: str):
    with psycopg.connect(warehouse_url, autocommit=True) as connection:
        yield connection


def test_real_flat_listing_is_stored_once_per_video_without_dates(conn: psycopg.Connection) -> None:
    entries = read_flat_listing(
        shared_path("realdata", "ytdlp_flat_playlist", "videos_anthonychaffeemd.json")
    )
    listing_store.upsert_listed(conn, CHANNEL, entries)
    listing_store.upsert_listed(conn, CHANNEL, entries)  # a second listing run adds nothing

    rows = listing_store.all_listed(conn, CHANNEL)
    assert len(rows) == 572
    assert all(r.published_at is None for r in rows)
    assert len(listing_store.unresolved_ids(conn, CHANNEL)) == 572
    assert "-pYI_37Xli4" in {r.video_id for r in rows}


def test_resolved_dates_survive_a_later_flat_listing(conn: psycopg.Connection) -> None:
    listing_store.upsert_listed(conn, CHANNEL, [ListingEntry("-pYI_37Xli4", "old title")])
    when = datetime(2023, 5, 1, 23, 30, tzinfo=UTC)
    listing_store.record_published(conn, {"-pYI_37Xli4": when})

    listing_store.upsert_listed(conn, CHANNEL, [ListingEntry("-pYI_37Xli4", "new title")])

    (row,) = listing_store.all_listed(conn, CHANNEL)
    assert row.published_at == when
    assert row.title == "new title"
    assert row.resolved_at is not None
    assert listing_store.unresolved_ids(conn, CHANNEL) == []


def test_listing_entry_with_a_date_counts_as_resolved(conn: psycopg.Connection) -> None:
    when = datetime(2024, 1, 2, 3, 4, tzinfo=UTC)
    listing_store.upsert_listed(conn, CHANNEL, [ListingEntry("abcdefghijk", "t", published_at=when)])
    (row,) = listing_store.all_listed(conn, CHANNEL)
    assert row.published_at == when and row.resolved_at is not None


def test_videos_are_found_by_their_utc_publish_day(conn: psycopg.Connection) -> None:
    listing_store.upsert_listed(
        conn,
        CHANNEL,
        [ListingEntry("late_utc_v1", "a"), ListingEntry("next_day_v2", "b"), ListingEntry("x", "c")],
    )
    listing_store.record_published(
        conn,
        {
            "late_utc_v1": datetime(2023, 5, 1, 23, 59, tzinfo=UTC),
            # 20:00 in New York on May 1st is May 2nd in UTC: the partition follows UTC.
            "next_day_v2": datetime(2023, 5, 1, 20, 0, tzinfo=UTC) + timedelta(hours=4),
        },
    )
    assert [r.video_id for r in listing_store.listed_on(conn, CHANNEL, date(2023, 5, 1))] == ["late_utc_v1"]
    assert [r.video_id for r in listing_store.listed_on(conn, CHANNEL, date(2023, 5, 2))] == ["next_day_v2"]
    assert listing_store.published_days(conn, CHANNEL) == {date(2023, 5, 1), date(2023, 5, 2)}


def test_failed_resolution_is_not_retried_until_the_wait_is_over(conn: psycopg.Connection) -> None:
    listing_store.upsert_listed(conn, CHANNEL, [ListingEntry("private_vid", None)])
    listing_store.record_resolve_error(conn, "private_vid", "Private video")

    assert listing_store.unresolved_ids(conn, CHANNEL) == []
    assert listing_store.unresolved_ids(conn, CHANNEL, retry_errors_after=timedelta(0)) == ["private_vid"]
    (row,) = listing_store.all_listed(conn, CHANNEL)
    assert row.resolve_error == "Private video"


def test_channels_do_not_see_each_others_listing(conn: psycopg.Connection) -> None:
    listing_store.upsert_listed(conn, CHANNEL, [ListingEntry("aaaaaaaaaaa", "a")])
    listing_store.upsert_listed(conn, "https://www.youtube.com/@other", [ListingEntry("bbbbbbbbbbb", "b")])
    assert [r.video_id for r in listing_store.all_listed(conn, CHANNEL)] == ["aaaaaaaaaaa"]


def test_naive_datetimes_are_refused(conn: psycopg.Connection) -> None:
    with pytest.raises(ValueError, match="no time zone"):
        listing_store.record_published(conn, {"x": datetime(2023, 1, 1)})


def test_values_are_bound_not_formatted(conn: psycopg.Connection) -> None:
    nasty = "x'); DROP TABLE channel_listing; --"
    listing_store.upsert_listed(conn, CHANNEL, [ListingEntry(nasty, nasty)])
    assert [r.video_id for r in listing_store.all_listed(conn, CHANNEL)] == [nasty]
