"""The second half of the graph: `segments` (retrieval units) and `segment_embeddings` (their vectors)."""

from collections.abc import Iterator
from datetime import date

import dagster as dg

from chaffee_assets.defs import checks
from chaffee_assets.defs.ingest_assets import transcripts
from chaffee_assets.defs.partitions import ASSET_GROUP, videos_backfill_policy, videos_daily_partition
from chaffee_assets.defs.per_day import check_evaluations, describe_days, report_day_metadata, run_days
from chaffee_assets.defs.resources import EmbeddingModelResource, VideoSourceResource, WarehouseResource
from chaffee_assets.golden_queries import (
    NOT_CONFIGURED,
    GoldenQueriesError,
    GoldenQuery,
    golden_queries_path,
    load_golden_queries,
)
from chaffee_assets.ingest import store as ingest_store
from chaffee_assets.retrieval import store as retrieval_store
from chaffee_assets.retrieval.embedder import EmbeddingModelError
from chaffee_assets.retrieval.pipeline import embed_missing, segment_videos
from chaffee_assets.retrieval.segmenter import SegmentParams
from chaffee_assets.settings import settings

AssetEvents = Iterator[dg.MaterializeResult | dg.AssetCheckEvaluation | dg.Output]


class SegmentsConfig(dg.Config):
    force: bool = False
    """Re-cut every video's segments even when they already come from its current transcript."""


def _video_ids_by_day(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> dict[date, list[str]]:
    days = run_days(context)
    ids: dict[date, list[str]] = {day: [] for day in days}
    with warehouse.session() as conn:
        for video in ingest_store.videos_between(conn, days[0], days[-1]):
            ids[video.partition_date].append(video.video_id)
    return ids


@dg.asset(
    partitions_def=videos_daily_partition,
    backfill_policy=videos_backfill_policy,
    deps=[transcripts],
    group_name=ASSET_GROUP,
    kinds={"postgres"},
    check_specs=checks.SEGMENTS_CHECKS,
    description="Each video's current transcript cut into overlapping windows that start on cue "
    "boundaries and fit the embedding model's input; rewritten per video in one transaction.",
)
def segments(
    context: dg.AssetExecutionContext, config: SegmentsConfig, warehouse: WarehouseResource
) -> AssetEvents:
    ids_by_day = _video_ids_by_day(context, warehouse)
    params = SegmentParams()
    figures: dict[date, dict[str, dg.MetadataValue]] = {}
    check_results: dict[date, list[dg.AssetCheckResult]] = {}
    with warehouse.session() as conn:
        for day, video_ids in ids_by_day.items():
            report = segment_videos(conn, video_ids, params=params, force=config.force)
            total = conn.execute(
                "SELECT count(*) FROM segments WHERE video_id = ANY(%s)", (video_ids,)
            ).fetchone()[0]
            figures[day] = {
                "videos_segmented": dg.MetadataValue.int(report.videos_segmented),
                "videos_unchanged": dg.MetadataValue.int(report.videos_unchanged),
                "segments_written": dg.MetadataValue.int(report.segments_written),
                "segment_count": dg.MetadataValue.int(total),
                "longest_segment_tokens": dg.MetadataValue.int(report.longest_segment_tokens),
            }
            if video_ids:  # a day without videos has nothing to check (see per_day.py)
                check_results[day] = [checks.no_duplicate_segments(conn, video_ids)]
    report_day_metadata(context, figures)
    yield dg.MaterializeResult(
        metadata={
            "run_days": describe_days(list(ids_by_day)),
            "token_limit": dg.MetadataValue.int(params.max_tokens),
        }
    )
    yield from check_evaluations(context, check_results)


@dg.asset(
    partitions_def=videos_daily_partition,
    backfill_policy=videos_backfill_policy,
    deps=[segments],
    group_name=ASSET_GROUP,
    kinds={"pytorch", "postgres"},
    check_specs=checks.EMBEDDINGS_CHECKS,
    description="Sentence-transformers vectors of every segment under the configured model "
    "(the model name is part of the key, so a second model can be embedded beside the first).",
)
def segment_embeddings(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    embedding_model: EmbeddingModelResource,
    video_source: VideoSourceResource,
) -> AssetEvents:
    ids_by_day = _video_ids_by_day(context, warehouse)
    embedder = embedding_model.get()
    golden, golden_note = _golden_queries(video_source)
    if golden_note:
        # The run's event log says it; `chaffee ingest` says it once in its summary.
        context.log.info(f"golden queries not evaluated: {golden_note}")
    figures: dict[date, dict[str, dg.MetadataValue]] = {}
    check_results: dict[date, list[dg.AssetCheckResult]] = {}
    seconds = 0.0
    others: dict[str, int | str] = {}
    with warehouse.session() as conn:
        # Every other registered model is kept complete too, so a re-cut video (a new transcript)
        # stays searchable under a second model as well; one that cannot load here is reported.
        other_embedders = {}
        for model, source in retrieval_store.maintained_models(conn):
            if model == embedder.model_name or not source:
                continue
            other = embedding_model.for_source(source)
            try:
                other.load()  # a model that cannot load here says so now, not mid-day
            except EmbeddingModelError as exc:
                context.log.warning(f"model {model} is registered but cannot load here: {exc}")
                others[model] = f"not loaded: {exc}"
                continue
            other_embedders[model] = other
            others[model] = 0
        for day, video_ids in ids_by_day.items():
            embedded = 0
            if video_ids:  # most days of a backfill have no videos
                report = embed_missing(conn, video_ids, embedder)
                seconds += report.seconds
                embedded = report.segments_embedded
                for model, other in other_embedders.items():
                    others[model] += embed_missing(conn, video_ids, other).segments_embedded
            complete = checks.embeddings_complete(conn, video_ids, embedder.model_name, embedder.dimension)
            golden_result = checks.golden_queries(conn, embedder, golden, video_ids) if golden else None
            figures[day] = {
                "segments_embedded": dg.MetadataValue.int(embedded),
                "segment_count": complete.metadata["segments"],
                "golden_queries": _golden_figure(golden_result, golden_note),
            }
            if video_ids:  # a day without videos has nothing to check (see per_day.py)
                check_results[day] = [complete, *([golden_result] if golden_result else [])]
    # Export the question runtime now, in a run that has torch loaded anyway, so that a search
    # from the command line embeds its question without importing torch. The vectors are written
    # already: a failed export costs searches their speed, never the run its embeddings.
    try:
        embedder.prepare_for_queries()
    except Exception as exc:  # noqa: BLE001 - any failure leaves questions to torch, which works
        context.log.warning(f"questions will be embedded by torch: the ONNX export failed: {exc}")
    report_day_metadata(context, figures)
    yield dg.MaterializeResult(
        metadata={
            "run_days": describe_days(list(ids_by_day)),
            "model": embedder.model_name,
            "dimensions": dg.MetadataValue.int(embedder.dimension),
            "run_embedding_seconds": dg.MetadataValue.float(round(seconds, 2)),
            "backend": embedder.runtime_name,
            "other_models": dg.MetadataValue.json(others),
        }
    )
    yield from check_evaluations(context, check_results)


def _golden_queries(video_source: VideoSourceResource) -> tuple[list[GoldenQuery], str | None]:
    """The questions to check, or none and the reason the check is skipped."""
    path = golden_queries_path(settings(), video_source.library_dir)
    if path is None:
        return [], NOT_CONFIGURED
    try:
        return load_golden_queries(path), None
    except GoldenQueriesError as exc:
        return [], str(exc)


def _golden_figure(result: dg.AssetCheckResult | None, note: str | None) -> dg.MetadataValue:
    if result is not None:
        found = result.metadata["video_found"].value
        return dg.MetadataValue.text(
            f"{found} of {result.metadata['questions'].value} questions found their video"
        )
    return dg.MetadataValue.text(
        f"not evaluated: {note or 'no golden question is answered by a video of this day'}"
    )
