"""The first half of the graph: `videos` (what was published each day) and `transcripts` (its words)."""


from collections import Counter
from datetime import UTC, datetime, timedelta

import dagster as dg

from chaffee_assets.defs.partitions import (
    days_in,
    partition_days,
    videos_backfill_policy,
    videos_daily_partition,
)
from chaffee_assets.defs.resources import VideoSourceResource, WarehouseResource
from chaffee_assets.ingest import store
from chaffee_assets.ingest.transcript_pipeline import TranscriptRules, obtain_transcript
from chaffee_assets.ingest.videos import Video

INGEST_GROUP = "ingest"

# Listing and caption requests meet transient network errors and rate limits: retry with backoff,
# jittered so parallel runs do not retry in lockstep. Per-video failures never reach this policy
# (they are recorded, not raised); it covers outages of the source or the database.
network_retry_policy = dg.RetryPolicy(
    max_retries=3, delay=30, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)

ASR_ENGINE_TAG = "chaffee/asr_engine"


def _markdown_titles(videos: list[Video], limit: int = 25) -> str:
    lines = ["| published (UTC) | video | title |", "|---|---|---|"]
    for video in videos[:limit]:
        title = video.title.replace("|", "\\|")
        published = f"{video.published_at:%Y-%m-%d %H:%M}" if video.published_at else "?"
        lines.append(f"| {published} | [{video.video_id}]({video.link}) | {title} |")
    if len(videos) > limit:
        lines.append(f"| … | | {len(videos) - limit} more |")
    return "\n".join(lines)


@dg.asset(
    partitions_def=videos_daily_partition,
    backfill_policy=videos_backfill_policy,
    retry_policy=network_retry_policy,
    group_name=INGEST_GROUP,
    kinds={"youtube", "postgres"},
    description="Videos published on the partition's day (UTC), upserted into `videos` with their metadata.",
)
def videos(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, video_source: VideoSourceResource
) -> dg.MaterializeResult:
    first, last = partition_days(context)
    source = video_source.get()
    found: list[Video] = []
    for day in days_in(first, last):
        found.extend(source.videos_published_on(day))
    with warehouse.connect() as conn:
        store.upsert_videos(conn, found)
    context.log.info(f"{len(found)} video(s) published {first}…{last} from {source.name}")
    availability = Counter(v.availability for v in found)
    return dg.MaterializeResult(
        metadata={
            "video_count": dg.MetadataValue.int(len(found)),
            "source": source.name,
            "availability": dg.MetadataValue.json(dict(availability)),
            "titles": dg.MetadataValue.md(_markdown_titles(found) if found else "_no videos on these days_"),
        }
    )


class TranscriptsConfig(dg.Config):
    force: bool = False
    """Replace current transcripts even when the new one is not better (e.g. a better Whisper model)."""
    asr_engine: str | None = None
    """Force the speech-recognition engine: 'local_whisper' or 'openai' (also the run tag chaffee/asr_engine)."""
    caption_wait_hours: float = 48.0
    """How long after publication to wait for YouTube's auto captions before paying for recognition."""
