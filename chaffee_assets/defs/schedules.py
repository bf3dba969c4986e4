"""The ingest job and the daily schedule that keeps the channel current and retries what waited."""

from datetime import UTC, date, timedelta

import dagster as dg
import psycopg

from chaffee_assets.defs.ingest_assets import transcripts, videos
from chaffee_assets.defs.partitions import videos_daily_partition
from chaffee_assets.defs.resources import WarehouseResource
from chaffee_assets.defs.retrieval_assets import segment_embeddings, segments
from chaffee_assets.defs.speaker_assets import speaker_labels
from chaffee_assets.ingest.retry_plan import partitions_to_retry
from chaffee_assets.settings import settings
from chaffee_assets.warehouse.server import WarehouseError

# On by default for the channel: keeping it current is its job. Off with a library folder
# (CHAFFEE_LIBRARY_DIR): a folder's new files are the sensor's (it watches the folder), and re-running
# yesterday and today every morning would find nothing the sensor had not already run.
REASON_TAG = "chaffee/reason"
NEWEST_REASON = "newest"

ingest_job = dg.define_asset_job(
    "ingest_job",
    # Partitioned by the selected assets' daily partitions (dagster infers it from the selection).
    selection=dg.AssetSelection.assets(videos, transcripts, segments, segment_embeddings, speaker_labels),
    description="Days of the channel, end to end: videos → transcripts → segments → embeddings, "
    "and who speaks when. "
    "One partition per run from the schedule and the sensor; up to 31 days per run in a backfill.",
)


def newest_days(today: date) -> list[date]:
    """Yesterday and today (UTC): a video published late yesterday and captioned overnight is
    picked up, and today's partition exists (end_offset=1) for this morning's uploads."""
    return [today - timedelta(days=1), today]


@dg.schedule(
    job=ingest_job,
    cron_schedule=settings().daily_schedule_cron,
    execution_timezone=settings().schedule_timezone,
    default_status=dg.DefaultScheduleStatus.STOPPED
    if settings().library_dir
    else dg.DefaultScheduleStatus.RUNNING,
    description="Runs the newest days (yesterday and today, UTC) and the earlier days whose videos are "
    "due for another try: captions waited for long enough, or blocked/over budget on an earlier day.",
)
def daily_ingest_schedule(
    context: dg.ScheduleEvaluationContext, warehouse: WarehouseResource
) -> list[dg.RunRequest] | dg.SkipReason:
    now = context.scheduled_execution_time.astimezone(UTC)
    today = now.date()
    newest = [day for day in newest_days(today) if day >= videos_daily_partition.start.date()]
    planned = [(day, NEWEST_REASON) for day in newest]
    try:
        with warehouse.connect() as conn:
            retries = partitions_to_retry(
                conn,
                now,
                # The cap keeps a bad day for YouTube (hundreds of blocked videos) from turning into
                # hundreds of runs the next morning; the rest follow on later ticks.
                settings().retry_partitions_per_tick,
                exclude=newest,
                earliest=videos_daily_partition.start.date(),
            )
    except (WarehouseError, psycopg.OperationalError) as exc:
        # The newest days matter more than the retries: run them and leave the retries for the next tick.
        context.log.warning(f"retry plan skipped, the warehouse is unreachable: {exc}")
        retries = []
    planned.extend(retries)
    for day, reason in retries:
        context.log.info(f"retrying {day}: {reason}")
    if not planned:
        return dg.SkipReason(
            f"today ({today}) is before the partition calendar starts "
            f"({videos_daily_partition.start.date()}) and no earlier day is due for a retry"
        )
    return [
        dg.RunRequest(
            run_key=f"{day.isoformat()}:{today.isoformat()}",
            partition_key=day.isoformat(),
            tags={REASON_TAG: reason},
        )
        for day, reason in planned
    ]
