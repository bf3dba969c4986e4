"""The remembered channel listing (`channel_listing`): which videos a channel has and when each was published.

A flat yt-dlp listing has ids without dates, and resolving a date can cost a request per video, so
both are written here once and read back by every later run. Functions take an open connection and
leave transaction control to the caller; every value is a bound parameter.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import psycopg

from chaffee_assets.ingest.ytdlp_metadata import ListingEntry

_UPSERT_LISTED = """
INSERT INTO channel_listing (video_id, channel_url, title, published_at, listed_at, resolved_at)
VALUES (%(video_id)s, %(channel_url)s, %(title)s, %(published_at)s, now(),
        CASE WHEN %(published_at)s::timestamptz IS NULL THEN NULL ELSE now() END)
ON CONFLICT (video_id) DO UPDATE SET
    channel_url  = EXCLUDED.channel_url,
    title        = COALESCE(EXCLUDED.title, channel_listing.title),
    -- A date once resolved is kept: a later flat listing (no dates) must not erase it.
    published_at = COALESCE(channel_listing.published_at, EXCLUDED.published_at),
    resolved_at  = CASE WHEN channel_listing.published_at IS NULL AND EXCLUDED.published_at IS NOT NULL
                        THEN now() ELSE channel_listing.resolved_at END,
    resolve_error = CASE WHEN EXCLUDED.published_at IS NOT NULL THEN NULL
                         ELSE channel_listing.resolve_error END,
    listed_at    = now()
"""

_RECORD_PUBLISHED = """
UPDATE channel_listing
SET published_at = %(published_at)s, resolved_at = now(), resolve_error = NULL
WHERE video_id = %(video_id)s
"""

_RECORD_ERROR = """
UPDATE channel_listing
SET resolve_error = %(message)s, resolved_at = now()
WHERE video_id = %(video_id)s AND published_at IS NULL
"""

_UNRESOLVED = """
SELECT video_id FROM channel_listing
WHERE channel_url = %(channel_url)s AND published_at IS NULL
  AND (resolve_error IS NULL OR resolved_at < now() - %(retry_after)s::interval)
ORDER BY listed_at, video_id
"""

_ON_DAY = """
SELECT video_id, channel_url, title, published_at, listed_at, resolved_at, resolve_error
FROM channel_listing
WHERE channel_url = %(channel_url)s
  AND (published_at AT TIME ZONE 'UTC')::date = %(day)s
ORDER BY published_at, video_id
"""

_DAYS = """
SELECT DISTINCT (published_at AT TIME ZONE 'UTC')::date FROM channel_listing
WHERE channel_url = %(channel_url)s AND published_at IS NOT NULL
"""

_ALL = """
SELECT video_id, channel_url, title, published_at, listed_at, resolved_at, resolve_error
FROM channel_listing WHERE channel_url = %(channel_url)s ORDER BY video_id
"""


@dataclass(frozen=True, slots=True)
class ListedVideo:
    """A row of `channel_listing`."""

    video_id: str
    channel_url: str
    title: str | None
    published_at: datetime | None
    listed_at: datetime
    resolved_at: datetime | None
    resolve_error: str | None


def upsert_listed(conn: psycopg.Connection, channel_url: str, entries: Iterable[ListingEntry]) -> int:
    """Remember listed videos (new ones inserted, known ones refreshed). Returns how many were given."""
    rows = [
        {
            "video_id": e.video_id,
            "channel_url": channel_url,
            "title": e.title,
            "published_at": e.published_at,
        }
        for e in entries
    ]
    if rows:
        with conn.cursor() as cur:
            cur.executemany(_UPSERT_LISTED, rows)
    return len(rows)


def record_published(conn: psycopg.Connection, published: Mapping[str, datetime]) -> None:
    """Store resolved publish instants (video id → timezone-aware datetime)."""
    for video_id, when in published.items():
        if when.tzinfo is None:
            raise ValueError(f"publish time of {video_id} has no time zone; pass UTC datetimes")
    rows = [{"video_id": v, "published_at": when} for v, when in published.items()]
    if rows:
        with conn.cursor() as cur:
            cur.executemany(_RECORD_PUBLISHED, rows)


def record_resolve_error(conn: psycopg.Connection, video_id: str, message: str) -> None:
    """Remember that a video's date could not be resolved, so it is not retried on every run."""
    conn.execute(_RECORD_ERROR, {"video_id": video_id, "message": message})


def unresolved_ids(
    conn: psycopg.Connection, channel_url: str, *, retry_errors_after: timedelta = timedelta(days=1)
) -> list[str]:
    """Listed videos with no publish date yet, oldest listing first; failed ones again after a while."""
    rows = conn.execute(_UNRESOLVED, {"channel_url": channel_url, "retry_after": retry_errors_after})
    return [r[0] for r in rows.fetchall()]


def listed_on(conn: psycopg.Connection, channel_url: str, day: date) -> list[ListedVideo]:
    """Videos of the channel published on `day` (UTC)."""
    rows = conn.execute(_ON_DAY, {"channel_url": channel_url, "day": day}).fetchall()
    return [ListedVideo(*r) for r in rows]


def published_days(conn: psycopg.Connection, channel_url: str) -> set[date]:
    return {r[0] for r in conn.execute(_DAYS, {"channel_url": channel_url}).fetchall()}


def all_listed(conn: psycopg.Connection, channel_url: str) -> list[ListedVideo]:
    rows = conn.execute(_ALL, {"channel_url": channel_url}).fetchall()
    return [ListedVideo(*r) for r in rows]
