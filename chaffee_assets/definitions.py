"""The code location: every asset, check, resource, schedule and sensor of Ask Dr Chaffee."""

import dagster as dg

from chaffee_assets.defs import ingest_assets, retrieval_assets, speaker_assets
from chaffee_assets.defs.alerts import alert_sensors
from chaffee_assets.defs.audience_assets import asked_questions_summary, questions_job, questions_schedule
from chaffee_assets.defs.executors import executor_from_env
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
    assets=[*INGEST_ASSETS, asked_questions_summary],
    jobs=[ingest_job, questions_job],
    # In the run's process, or on Celery workers when CHAFFEE_EXECUTOR_CONFIG says so (executors.py).
    executor=executor_from_env(),
    schedules=[daily_ingest_schedule, questions_schedule],
    sensors=[channel_feed_sensor, *alert_sensors],
    resources=build_resources(),
)
