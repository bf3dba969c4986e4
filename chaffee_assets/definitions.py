"""The code location: every asset, check, resource, schedule and sensor of Ask Dr Chaffee."""

import dagster as dg

from chaffee_assets.defs import ingest_assets, retrieval_assets, speaker_assets
from chaffee_assets.defs.resources import (
    VideoSourceResource,
    WarehouseResource,
    embedding_model_from_env,
    video_source_from_env,
)
from chaffee_assets.defs.schedules import daily_ingest_schedule, ingest_job
from chaffee_assets.defs.sensors import channel_feed_sensor
from chaffee_assets.defs.transcription_resources import transcription_resources_from_env

INGEST_ASSETS = [
    ingest_assets.videos,
    ingest_assets.transcripts,
    retrieval_assets.segments,
    retrieval_assets.segment_embeddings,
    speaker_assets.speaker_labels,
]


def build_resources(video_source: VideoSourceResource | None = None) -> dict[str, object]:
    """The resources as the code location binds them; `video_source` swaps where videos come from."""
    return {
        "warehouse": WarehouseResource(),
        "video_source": video_source or video_source_from_env(),
        "embedding_model": embedding_model_from_env(),
        **transcription_resources_from_env(),
    }


defs = dg.Definitions(
    assets=INGEST_ASSETS,
    jobs=[ingest_job],
    # A run's steps depend on each other (videos → transcripts → segments → embeddings), so they never
    # run side by side: one process per run sets up the embedding model and connections once, where
    # the default executor would start a process, and load torch, for every step.
    executor=dg.in_process_executor,
    schedules=[daily_ingest_schedule],
    sensors=[channel_feed_sensor],
    resources=build_resources(),
)
