"""`speaker_labels`: who speaks when in each video of the day, the host's share of each segment."""

from collections.abc import Iterator

import dagster as dg

from chaffee_assets.defs.partitions import ASSET_GROUP, videos_backfill_policy, videos_daily_partition
from chaffee_assets.defs.per_day import describe_days, run_days
from chaffee_assets.defs.pools import GPU_POOL
from chaffee_assets.defs.resources import VideoSourceResource, WarehouseResource
from chaffee_assets.defs.retrieval_assets import segments
from chaffee_assets.ingest import store as ingest_store
from chaffee_assets.settings import settings


class SpeakerLabelsConfig(dg.Config):
    force: bool = False
    """Label every video again, even one already labelled with the same model and profiles."""


def _markdown_unknown(unknown: dict[str, str], limit: int = 25) -> dg.MetadataValue:
    lines = [f"- `{video_id}`: {why}" for video_id, why in list(unknown.items())[:limit]]
    if len(unknown) > limit:
        lines.append(f"- … and {len(unknown) - limit} more")
    return dg.MetadataValue.md("\n".join(lines) or "none")


@dg.asset(
    partitions_def=videos_daily_partition,
    backfill_policy=videos_backfill_policy,
    deps=[segments],
    # The same lineage as the chain it follows: one group, one picture of the pipeline.
    group_name=ASSET_GROUP,
    kinds={"pytorch", "postgres"},
    # On a GPU the voice model takes turns with Whisper; on a CPU it needs no pool.
    pool=GPU_POOL if settings().speaker_device.startswith("cuda") else None,
    description="Who speaks when in each video's audio (the library's recording, or the audio fetched "
    "for a YouTube video), with the enrolled voice profiles: turns with the model that made them, the "
    "host's share of each segment and the speaker of each cue. No audio, or no host enrolled: unknown.",
)
def speaker_labels(
    context: dg.AssetExecutionContext,
    config: SpeakerLabelsConfig,
    warehouse: WarehouseResource,
    video_source: VideoSourceResource,
) -> Iterator[dg.MaterializeResult]:
    from chaffee_assets.speakers.encoder import load_encoder
    from chaffee_assets.speakers.pipeline import label_videos

    days = run_days(context)
    source = video_source.get()
    config_now = settings()
    with warehouse.session() as conn:
        stored = {v.video_id for v in ingest_store.videos_between(conn, days[0], days[-1])}
        videos = [v for day in days for v in source.videos_published_on(day) if v.video_id in stored]
        report = label_videos(
            conn,
            source,
            videos,
            lambda: load_encoder(config_now.speaker_model, config_now.speaker_device),
            config_now.speaker_model,
            force=config.force,
            keep_dir=config_now.audio_dir,
        )
    for video_id, why in report.unknown.items():
        context.log.info(f"{video_id}: speakers unknown: {why}")
    shares = [s for s in report.host_shares.values() if s is not None]
    yield dg.MaterializeResult(
        metadata={
            "run_days": describe_days(days),
            "videos_labelled": dg.MetadataValue.int(len(report.labelled)),
            "videos_unchanged": dg.MetadataValue.int(len(report.unchanged)),
            "videos_unknown": dg.MetadataValue.int(len(report.unknown)),
            "mean_host_share": dg.MetadataValue.float(round(sum(shares) / len(shares), 3) if shares else 0.0),
            "unknown": _markdown_unknown(report.unknown),
        }
    )
