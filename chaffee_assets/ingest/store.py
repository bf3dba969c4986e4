"""Reading and writing videos, transcripts and transcript attempts in the warehouse.

Every write here is idempotent: a video is upserted by id, a transcript becomes a new version only
when it differs from (and is at least as good as) the current one, and a failure replaces the
video's previous failure record.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

import psycopg
from psycopg import Connection
from psycopg.types.json import Jsonb

from chaffee_assets.error_text import one_line
from chaffee_assets.ingest.cues import Cue
from chaffee_assets.ingest.outcomes import TranscriptFailure
from chaffee_assets.ingest.validation import clean_text
from chaffee_assets.ingest.videos import Video, watch_url
from chaffee_assets.transcription import registry

_UPSERT_VIDEO = """
INSERT INTO videos (video_id, source, title, description, published_at, duration_s, channel, channel_id,
                    tags, thumbnail_url, url, language, availability)
VALUES (%(video_id)s, %(source)s, %(title)s, %(description)s, %(published_at)s, %(duration_s)s,
        %(channel)s, %(channel_id)s, %(tags)s, %(thumbnail_url)s, %(url)s, %(language)s, %(availability)s)
ON CONFLICT (video_id) DO UPDATE SET
    source = EXCLUDED.source, title = EXCLUDED.title, description = EXCLUDED.description,
    published_at = EXCLUDED.published_at, duration_s = EXCLUDED.duration_s, channel = EXCLUDED.channel,
    channel_id = EXCLUDED.channel_id, tags = EXCLUDED.tags, thumbnail_url = EXCLUDED.thumbnail_url,
    url = EXCLUDED.url, language = EXCLUDED.language, availability = EXCLUDED.availability,
    last_seen_at = now()
"""


@dataclass(frozen=True, slots=True)
class VideoWrites:
    """What `upsert_videos` did: every video is written, some without the metadata the warehouse refused."""

    written: int
    refused: dict[str, str]  # video id -> why its full row was refused (it was stored with id, title, date)


def _video_row(v: Video) -> dict[str, object]:
    # The sources validate their fields; cleaning again here means no writer can pass the warehouse
    # a NUL or a lone surrogate, which would fail the statement.
    return {
        "video_id": v.video_id,
        "source": v.source,
        "title": clean_text(v.title) or v.video_id,
        "description": clean_text(v.description, multiline=True) if v.description else None,
        "published_at": v.published_at,
        "duration_s": v.duration_s,
        "channel": clean_text(v.channel) if v.channel else None,
        "channel_id": clean_text(v.channel_id) if v.channel_id else None,
        "tags": [clean_text(tag) for tag in v.tags],
        "thumbnail_url": clean_text(v.thumbnail_url) if v.thumbnail_url else None,
        "url": clean_text(v.link) or watch_url(v.video_id),
        "language": clean_text(v.language) if v.language else None,
        "availability": v.availability,
    }


def _bare_row(row: dict[str, object]) -> dict[str, object]:
    """Only what cannot be wrong: the video is kept on its day while its other fields are fixed."""
    video_id = str(row["video_id"])
    return {
        **{key: None for key in row},
        "video_id": video_id,
        "source": row["source"],
        "title": row["title"],
        "published_at": row["published_at"],
        "tags": [],
        "url": watch_url(video_id),
        "availability": "available",
    }


def upsert_videos(conn: Connection, videos: Iterable[Video]) -> VideoWrites:
    """Insert or refresh videos by id (first_seen_at is kept).

    One transaction for all, as the common case; if the warehouse refuses a row, each video is
    written on its own instead, so one video's bad metadata costs only that metadata: its row is
    stored with id, title and date, and the reason is returned.
    """
    rows = [_video_row(v) for v in videos]
    if not rows:
        return VideoWrites(0, {})
    try:
        with conn.transaction(), conn.cursor() as cur:
            cur.executemany(_UPSERT_VIDEO, rows)
        return VideoWrites(len(rows), {})
    except (psycopg.DataError, psycopg.IntegrityError):
        pass
    written, refused = 0, {}
    for row in rows:
        for attempt in (row, _bare_row(row)):
            try:
                with conn.transaction():
                    conn.execute(_UPSERT_VIDEO, attempt)
            except (psycopg.DataError, psycopg.IntegrityError) as exc:
                refused[str(row["video_id"])] = one_line(exc)
                continue
            written += 1
            break
    return VideoWrites(written, refused)


@dataclass(frozen=True, slots=True)
class StoredVideo:
    video_id: str
    title: str
    published_at: datetime | None
    partition_date: date | None
    duration_s: float | None
    availability: str


def videos_between(conn: Connection, first_day: date, last_day: date) -> list[StoredVideo]:
    """The stored videos whose partition date lies in [first_day, last_day], oldest first."""
    rows = conn.execute(
        """
        SELECT video_id, title, published_at, partition_date, duration_s, availability
        FROM videos WHERE partition_date BETWEEN %s AND %s
        ORDER BY published_at, video_id
        """,
        (first_day, last_day),
    ).fetchall()
    return [StoredVideo(*row) for row in rows]


@dataclass(frozen=True, slots=True)
class CurrentTranscript:
    transcript_id: int
    version: int
    source: str
    cue_count: int


def current_transcript(conn: Connection, video_id: str) -> CurrentTranscript | None:
    row = conn.execute(
        "SELECT transcript_id, version, source, cue_count FROM transcripts WHERE video_id = %s AND is_current",
        (video_id,),
    ).fetchone()
    return CurrentTranscript(*row) if row else None


def is_improvement(new_source: str, current: CurrentTranscript | None) -> bool:
    """Whether a transcript from `new_source` should replace the current one without being forced."""
    if current is None:
        return True
    return registry.rank(new_source) > registry.rank(current.source)


@dataclass(frozen=True, slots=True)
class TranscriptWrite:
    transcript_id: int
    version: int
    replaced: bool  # a previous current version was demoted to history


def write_transcript(
    conn: Connection,
    video_id: str,
    cues: Sequence[Cue],
    *,
    source: str,
    language: str | None,
    model: str | None = None,
    audio_seconds: float | None = None,
    cost_usd: float = 0.0,
    fetched_at: datetime | None = None,
) -> TranscriptWrite:
    """Make these cues the video's current transcript, keeping earlier versions as history.

    One transaction: the row lock on the video serialises two writers of the same video, so two
    concurrent runs cannot both create version N+1 or leave two current rows.
    """
    payload = Jsonb([cue.as_dict() for cue in cues])
    with conn.transaction():
        conn.execute("SELECT 1 FROM videos WHERE video_id = %s FOR UPDATE", (video_id,))
        current = conn.execute(
            "SELECT transcript_id, version, source, cues FROM transcripts WHERE video_id = %s AND is_current",
            (video_id,),
        ).fetchone()
        if current is not None and current[2] == source and current[3] == payload.obj:
            # Same words from the same source: nothing new, keep the existing version.
            _clear_failure(conn, video_id)
            return TranscriptWrite(current[0], current[1], replaced=False)
        next_version = conn.execute(
            "SELECT coalesce(max(version), 0) + 1 FROM transcripts WHERE video_id = %s", (video_id,)
        ).fetchone()[0]
        if current is not None:
            conn.execute("UPDATE transcripts SET is_current = false WHERE transcript_id = %s", (current[0],))
        transcript_id = conn.execute(
            """
            INSERT INTO transcripts (video_id, version, source, language, model, cues, audio_seconds,
                                     cost_usd, fetched_at)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, coalesce(%s, now()))
            RETURNING transcript_id
            """,
            (video_id, next_version, source, language, model, payload, audio_seconds, cost_usd, fetched_at),
        ).fetchone()[0]
        _clear_failure(conn, video_id)
    return TranscriptWrite(transcript_id, next_version, replaced=current is not None)


def _clear_failure(conn: Connection, video_id: str) -> None:
    conn.execute("DELETE FROM transcript_attempts WHERE video_id = %s", (video_id,))


def record_failure(conn: Connection, video_id: str, failure: TranscriptFailure) -> None:
    """Remember why the video has no transcript (replacing any earlier reason), counting attempts."""
    with conn.transaction():
        conn.execute(
            """
            INSERT INTO transcript_attempts (video_id, failure_class, message, retry_after)
            VALUES (%s, %s, %s, %s)
            ON CONFLICT (video_id) DO UPDATE SET
                failure_class = EXCLUDED.failure_class, message = EXCLUDED.message,
                retry_after = EXCLUDED.retry_after, attempted_at = now(),
                attempts = transcript_attempts.attempts + 1
            """,
            (video_id, failure.failure_class.value, clean_text(failure.message)[:2000], failure.retry_after),
        )
