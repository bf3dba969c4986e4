"""The first half of the graph: `videos` (what was published each day) and `transcripts` (its words)."""

import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import dagster as dg

from chaffee_assets.defs import checks
from chaffee_assets.defs.executors import GPU_QUEUE_TAGS
from chaffee_assets.defs.failures import retry_only_transient
from chaffee_assets.defs.partitions import ASSET_GROUP, videos_backfill_policy, videos_daily_partition
from chaffee_assets.defs.per_day import check_evaluations, describe_days, report_day_metadata, run_days
from chaffee_assets.defs.pools import GPU_POOL
from chaffee_assets.defs.resources import VideoSourceResource, WarehouseResource
from chaffee_assets.defs.transcription_resources import (
    LocalWhisperResource,
    OpenAIWhisperResource,
    TranscriptionPolicyResource,
    transcriber_for,
)
from chaffee_assets.ingest import store
from chaffee_assets.ingest.transcript_pipeline import TranscriptOutcome, TranscriptRules, obtain_transcript
from chaffee_assets.ingest.videos import Video

# A lost database connection or a network outage: retry with backoff, jittered so parallel runs do
# not retry in lockstep. Per-video failures never reach this policy (they are recorded, not raised),
# and `retry_only_transient` keeps permanent failures (bad data, a refused row, a bug) and YouTube's
# answers (already retried by the source's pacer) from it.
network_retry_policy = dg.RetryPolicy(
    max_retries=3, delay=30, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)


def _markdown_titles(videos: list[Video], limit: int = 25) -> dg.MetadataValue:
    lines = ["| published (UTC) | video | title |", "|---|---|---|"]
    for video in videos[:limit]:
        title = video.title.replace("|", "\\|")
        published = f"{video.published_at:%Y-%m-%d %H:%M}" if video.published_at else "?"
        lines.append(f"| {published} | [{video.video_id}]({video.link}) | {title} |")
    if len(videos) > limit:
        lines.append(f"| … | | {len(videos) - limit} more |")
    return dg.MetadataValue.md("\n".join(lines))


@dg.asset(
    partitions_def=videos_daily_partition,
    backfill_policy=videos_backfill_policy,
    retry_policy=network_retry_policy,
    group_name=ASSET_GROUP,
    kinds={"youtube", "postgres"},
    description="Videos published on the partition's day (UTC), upserted into `videos` with their metadata.",
)
@retry_only_transient
def videos(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, video_source: VideoSourceResource
) -> dg.MaterializeResult:
    days = run_days(context)
    source = video_source.get()
    found_by_day = {day: source.videos_published_on(day) for day in days}
    found = [video for day_videos in found_by_day.values() for video in day_videos]
    with warehouse.session() as conn:
        writes = store.upsert_videos(conn, found)
    context.log.info(f"{len(found)} video(s) published {describe_days(days)} from {source.name}")
    for problem in (p for v in found for p in v.metadata_problems):
        context.log.warning(f"metadata field dropped: {problem}")
    for video_id, reason in writes.refused.items():
        context.log.warning(
            f"{video_id}: the warehouse refused its metadata ({reason}); stored id, title and date"
        )
    # A library entry that cannot be placed on a day (no info.json, no date, broken JSON) belongs to
    # no partition; every run reports them so the operator sees what to fix.
    skipped = [f"{s.video_id}: {s.reason}" for s in getattr(source, "skipped", list)()]
    for line in skipped:
        context.log.warning(f"library entry skipped: {line}")
    report_day_metadata(
        context,
        {
            day: {
                "video_count": dg.MetadataValue.int(len(day_videos)),
                "availability": dg.MetadataValue.json(dict(Counter(v.availability for v in day_videos))),
                "titles": _markdown_titles(day_videos) if day_videos else dg.MetadataValue.text("none"),
            }
            for day, day_videos in found_by_day.items()
        },
    )
    return dg.MaterializeResult(
        metadata={
            "source": source.name,
            "run_days": describe_days(days),
            "skipped_library_entries": checks.listing(skipped),
        }
    )


class TranscriptsConfig(dg.Config):
    force: bool = False
    """Replace current transcripts even when the new one is not better (e.g. a better Whisper model)."""
    asr_engine: str | None = None
    """Force the speech-recognition engine: a registry name or alias such as 'local_whisper' or 'openai'
    (also the run tag chaffee/asr_engine)."""
    caption_wait_hours: float = 48.0
    """How long after publication to wait for YouTube's auto captions before paying for recognition."""


@dg.asset(
    partitions_def=videos_daily_partition,
    backfill_policy=videos_backfill_policy,
    retry_policy=network_retry_policy,
    deps=[videos],
    group_name=ASSET_GROUP,
    kinds={"youtube", "whisper", "openai", "postgres"},
    pool=GPU_POOL,  # may load local Whisper: one step at a time holds the GPU
    op_tags=GPU_QUEUE_TAGS,  # on Celery, the GPU workers' queue (defs/executors.py)
    check_specs=checks.TRANSCRIPTS_CHECKS,
    description="The best transcript of each video of the day: captions first, then speech recognition "
    "(local Whisper for old days, OpenAI for new ones). Per-video failures are recorded, not raised.",
)
@retry_only_transient
def transcripts(
    context: dg.AssetExecutionContext,
    config: TranscriptsConfig,
    warehouse: WarehouseResource,
    video_source: VideoSourceResource,
    local_whisper: LocalWhisperResource,
    openai_whisper: OpenAIWhisperResource,
    transcription_policy: TranscriptionPolicyResource,
) -> Iterator[dg.MaterializeResult | dg.AssetCheckEvaluation | dg.Output]:
    started = time.perf_counter()
    days = run_days(context)
    source = video_source.get()
    now = datetime.now(UTC)
    rules = TranscriptRules(caption_wait=timedelta(hours=config.caption_wait_hours), force=config.force)
    engine_resources = {"local_whisper": local_whisper, "openai_whisper": openai_whisper}  # registry keys
    outcomes_by_day: dict[date, list[TranscriptOutcome]] = {day: [] for day in days}
    with warehouse.session() as conn:
        stored = {v.video_id: v for v in store.videos_between(conn, days[0], days[-1])}
        for day in days:
            # The source's view carries caption and audio locations; the stored row is authoritative
            # for availability (a video can be marked unavailable after it was listed).
            for video in source.videos_published_on(day):
                if video.video_id not in stored:
                    continue
                video.availability = stored[video.video_id].availability
                engine = transcription_policy.engine_for(
                    video.partition_date or day,
                    now.date(),
                    run_tags=context.run.tags,
                    config_override=config.asr_engine,
                )

                def recognizer(engine: str = engine):
                    return transcriber_for(engine, engine_resources)

                outcome = obtain_transcript(conn, video, source, recognizer, now=now, rules=rules)
                if outcome.status not in ("written", "kept"):
                    context.log.warning(f"{video.video_id}: {outcome.status}: {outcome.detail}")
                outcomes_by_day[day].append(outcome)
        ids_by_day = _stored_ids_by_day(stored.values(), days)
        spend_check = checks.spend_within_budget(conn, openai_whisper.settings().daily_budget_usd)
        check_results = {
            day: [checks.every_video_accounted(conn, ids), *checks.transcript_quality(conn, ids)]
            for day, ids in ids_by_day.items()
            if ids  # a day without videos has nothing to check (see per_day.py)
        }
    report_day_metadata(context, {day: _transcript_figures(o) for day, o in outcomes_by_day.items()})
    yield dg.MaterializeResult(
        metadata={
            "run_days": describe_days(days),
            "run_seconds": dg.MetadataValue.float(round(time.perf_counter() - started, 2)),
            "asr_spend_today_usd": dg.MetadataValue.float(spend_check.metadata["spent_today_usd"].value),
        }
    )
    yield from check_evaluations(context, check_results, run_wide=[spend_check])


def _stored_ids_by_day(stored, days: list[date]) -> dict[date, list[str]]:
    ids: dict[date, list[str]] = {day: [] for day in days}
    for video in stored:
        if video.partition_date in ids:
            ids[video.partition_date].append(video.video_id)
    return ids


def _transcript_figures(outcomes: list[TranscriptOutcome]) -> dict[str, dg.MetadataValue]:
    statuses = Counter(o.status for o in outcomes)
    sources = Counter(o.source for o in outcomes if o.status == "written")
    failures = [o for o in outcomes if o.status not in ("written", "kept")]
    return {
        "video_count": dg.MetadataValue.int(len(outcomes)),
        "written": dg.MetadataValue.int(statuses.get("written", 0)),
        "kept": dg.MetadataValue.int(statuses.get("kept", 0)),
        "failed": dg.MetadataValue.int(len(failures)),
        "by_status": dg.MetadataValue.json(dict(statuses)),
        "written_by_source": dg.MetadataValue.json(dict(sources)),
        "failures": _markdown_failures(failures) if failures else dg.MetadataValue.text("none"),
    }


def _markdown_failures(failures: list[TranscriptOutcome], limit: int = 25) -> dg.MetadataValue:
    lines = ["| video | class | detail |", "|---|---|---|"]
    for outcome in failures[:limit]:
        detail = outcome.detail.replace("|", "\\|").replace("\n", " ")[:200]
        lines.append(f"| {outcome.video_id} | {outcome.status} | {detail} |")
    if len(failures) > limit:
        lines.append(f"| … | | {len(failures) - limit} more |")
    return dg.MetadataValue.md("\n".join(lines))
