"""The channel feed sensor: a run of the publish day as soon as a new video appears in the RSS feed.

The cursor is the JSON list of video ids already seen (newest first, at most `MAX_SEEN_IDS`). A seen
video is never requested again by the sensor: one still waiting for captions (`too_new`) or blocked
is re-run by the daily schedule's retry plan, on its own timetable, not by a sensor looping every
few minutes.
"""

import http.client
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg

from chaffee_assets.defs.partitions import videos_daily_partition
from chaffee_assets.defs.resources import VideoSourceResource
from chaffee_assets.defs.schedules import REASON_TAG, ingest_job
from chaffee_assets.ingest.youtube import FEED_URL, FeedEntry, YouTubeError, parse_channel_feed, urllib_get
from chaffee_assets.settings import settings

VIDEO_IDS_TAG = "chaffee/video_ids"
FEED_REASON = "feed:new"
FIRST_TICK_REASON = "feed:first_tick"
LIBRARY_REASON = "library:new"

# The feed holds the newest ~15 videos; remembering far more than that means an id that drops out
# and comes back (a re-dated premiere) is still recognised, while the cursor stays a few KB.
MAX_SEEN_IDS = 200

FeedFetch = Callable[[str, str | None], bytes]
"""(channel id, proxy or None) → the feed document; raises OSError or YouTubeError when it cannot."""


def fetch_channel_feed(channel_id: str, proxy: str | None) -> bytes:
    """One GET of the channel's feed, no retries: the next tick is the retry."""
    status, body = urllib_get(proxy, timeout_s=settings().feed_timeout_s)(
        FEED_URL, {"channel_id": channel_id}
    )
    if status != 200:
        raise YouTubeError(f"the channel RSS feed answered HTTP {status}")
    return body


@dataclass(frozen=True)
class FeedPlan:
    """What one tick does: the days to run (each with the new video ids on it) and the new cursor."""

    days: dict[date, list[str]]
    seen: list[str]
    before_calendar: list[str] = field(default_factory=list)


def read_cursor(cursor: str | None) -> list[str] | None:
    """The seen ids in a cursor; None when there is none yet or it is unreadable (a first tick)."""
    if not cursor:
        return None
    try:
        ids = json.loads(cursor)
    except ValueError:
        return None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        return None
    return ids


def plan_feed_runs(
    entries: Sequence[FeedEntry],
    seen: list[str] | None,
    *,
    first_tick_days: int,
    first_day: date,
    last_day: date,
) -> FeedPlan:
    """Group the unseen entries by publish day (UTC) between `first_day` and `last_day`.

    With no cursor (`seen` is None) every entry is recorded as seen but only the newest
    `first_tick_days` days are run: the channel's history is a backfill, not the sensor's job.
    An entry dated after `last_day` stays unseen, so it is run once its partition exists.
    """
    known = set(seen or ())
    days: dict[date, list[str]] = {}
    before_calendar: list[str] = []
    recorded: list[str] = []
    for entry in entries:
        if entry.published_at is None:
            continue  # no day to run; the listing in the `videos` asset still finds it
        day = entry.published_at.astimezone(UTC).date()
        if day > last_day:
            continue
        recorded.append(entry.video_id)
        if entry.video_id in known:
            continue
        if day < first_day:
            before_calendar.append(entry.video_id)
            continue
        days.setdefault(day, []).append(entry.video_id)
    if seen is None:
        days = {day: days[day] for day in sorted(days, reverse=True)[: max(first_tick_days, 0)]}
    merged = list(dict.fromkeys([*recorded, *(seen or ())]))[:MAX_SEEN_IDS]
    return FeedPlan(days=days, seen=merged, before_calendar=before_calendar)


def watch_library(
    context: dg.SensorEvaluationContext, video_source: VideoSourceResource, today: date
) -> dg.SensorResult:
    """With a library folder as the source, the sensor watches the folder instead of the feed: a
    video that appears in it (yt-dlp adding the channel's new uploads) gets its publish day run.

    The cursor is every id seen in the folder. The first look records what is there and runs
    nothing: loading a folder's existing videos is `chaffee ingest --library`'s job.
    """
    if not Path(video_source.library_dir).expanduser().is_dir():
        return dg.SensorResult(
            skip_reason=f"the library folder {video_source.library_dir} does not exist (CHAFFEE_LIBRARY_DIR)",
            cursor=context.cursor,
        )
    source = video_source.get()
    first_day = videos_daily_partition.start.date()
    listed = {
        video.video_id: day
        for day in source.publish_dates()
        if day <= today
        for video in source.videos_published_on(day)
    }
    seen = read_cursor(context.cursor)
    cursor = json.dumps(sorted(listed.keys() | set(seen or ())))
    if seen is None:
        return dg.SensorResult(
            skip_reason=f"first look at the library {video_source.library_dir}: {len(listed)} video(s) "
            "recorded as seen, none run (`chaffee ingest --library` loads what is already there)",
            cursor=cursor,
        )
    days: dict[date, list[str]] = {}
    for video_id, day in listed.items():
        if video_id not in seen and day >= first_day:
            days.setdefault(day, []).append(video_id)
    if not days:
        return dg.SensorResult(
            skip_reason=f"no new videos in the library {video_source.library_dir} ({len(listed)} listed)",
            cursor=cursor,
        )
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=f"library:{day.isoformat()}:{'+'.join(sorted(ids))}",
                partition_key=day.isoformat(),
                tags={REASON_TAG: LIBRARY_REASON, VIDEO_IDS_TAG: " ".join(sorted(ids))},
            )
            for day, ids in sorted(days.items())
        ],
        cursor=cursor,
    )


def build_channel_feed_sensor(
    fetch: FeedFetch = fetch_channel_feed,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> dg.SensorDefinition:
    """The sensor with its feed fetch and clock injected (tests pass a recorded document)."""

    @dg.sensor(
        name="channel_feed_sensor",
        job=ingest_job,
        minimum_interval_seconds=settings().feed_sensor_interval_s,
        # On for either source: it watches the feed, or the library folder (its first look runs nothing).
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Watches the channel's RSS feed (or, with a library folder as the source, the "
        "folder) and runs the publish day of each new video. The first tick runs only the newest days "
        "(none for a folder); older history is an operator's backfill.",
    )
    def channel_feed_sensor(
        context: dg.SensorEvaluationContext, video_source: VideoSourceResource
    ) -> dg.SensorResult | dg.SkipReason:
        if video_source.library_dir:
            return watch_library(context, video_source, clock().astimezone(UTC).date())
        if not video_source.channel_id:
            return dg.SkipReason("no channel id is configured (CHAFFEE_CHANNEL_ID): no feed to watch")
        channel_id = video_source.channel_id
        try:
            entries = parse_channel_feed(fetch(channel_id, video_source.proxy))
        except (OSError, http.client.HTTPException, YouTubeError) as exc:
            # The cursor is left as it was, so nothing is lost; the daily schedule runs regardless.
            context.log.warning(f"could not read the feed {FEED_URL}?channel_id={channel_id}: {exc}")
            return dg.SkipReason(f"channel feed unavailable: {exc}")

        seen = read_cursor(context.cursor)
        if seen is None and context.cursor:
            context.log.warning("the cursor is unreadable; treating this tick as the first one")
        plan = plan_feed_runs(
            entries,
            seen,
            first_tick_days=settings().feed_first_tick_days,
            first_day=videos_daily_partition.start.date(),
            last_day=clock().astimezone(UTC).date(),
        )
        if plan.before_calendar:
            context.log.warning(
                f"videos {', '.join(plan.before_calendar)} were published before the partition calendar "
                f"starts ({videos_daily_partition.start.date()}); set CHAFFEE_START_DATE earlier"
            )
        reason = FIRST_TICK_REASON if seen is None else FEED_REASON
        # An empty feed on the first tick leaves no cursor, so the next tick is still a (capped) first one.
        cursor = json.dumps(plan.seen) if plan.seen or seen is not None else None
        if not plan.days:
            return dg.SensorResult(
                skip_reason=f"no new videos among {len(entries)} feed entries", cursor=cursor
            )
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(
                    # The ids are part of the key: a second video on an already-run day gets its own run.
                    run_key=f"feed:{day.isoformat()}:{'+'.join(sorted(ids))}",
                    partition_key=day.isoformat(),
                    tags={REASON_TAG: reason, VIDEO_IDS_TAG: " ".join(ids)},
                )
                for day, ids in sorted(plan.days.items())
            ],
            cursor=cursor,
        )

    return channel_feed_sensor


channel_feed_sensor = build_channel_feed_sensor()
