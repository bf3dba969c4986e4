"""The second half of the graph: `segments` (retrieval units) and `segment_embeddings` (their vectors)."""

import dagster as dg

from chaffee_assets.defs import checks
from chaffee_assets.defs.ingest_assets import transcripts
from chaffee_assets.defs.partitions import partition_days, videos_backfill_policy, videos_daily_partition
from chaffee_assets.defs.resources import EmbeddingModelResource, WarehouseResource
from chaffee_assets.ingest import store as ingest_store
from chaffee_assets.retrieval import store as retrieval_store
from chaffee_assets.retrieval.embedder import EmbeddingModelError
from chaffee_assets.retrieval.pipeline import embed_missing, segment_videos
from chaffee_assets.retrieval.segmenter import SegmentParams

RETRIEVAL_GROUP = "retrieval"


class SegmentsConfig(dg.Config):
    force: bool = False
    """Re-cut every video's segments even when they already come from its current transcript."""


def _partition_video_ids(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> list[str]:
    first, last = partition_days(context)
    with warehouse.session() as conn:
        return [v.video_id for v in ingest_store.videos_between(conn, first, last)]


@dg.asset(
    partitions_def=videos_daily_partition,
    backfill_policy=videos_backfill_policy,
    deps=[transcripts],
    group_name=RETRIEVAL_GROUP,
    kinds={"postgres"},
    check_specs=checks.SEGMENTS_CHECKS,
    description="Each video's current transcript cut into overlapping windows that start on cue "
    "boundaries and fit the embedding model's input; rewritten per video in one transaction.",
)
def segments(
    context: dg.AssetExecutionContext, config: SegmentsConfig, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    video_ids = _partition_video_ids(context, warehouse)
    params = SegmentParams()
    with warehouse.session() as conn:
        report = segment_videos(conn, video_ids, params=params, force=config.force)
        total = conn.execute(
            "SELECT count(*) FROM segments WHERE video_id = ANY(%s)", (video_ids,)
        ).fetchone()[0]
        check_results = [checks.no_duplicate_segments(conn, video_ids)]
    return dg.MaterializeResult(
        metadata={
            "videos_segmented": dg.MetadataValue.int(report.videos_segmented),
            "videos_unchanged": dg.MetadataValue.int(report.videos_unchanged),
            "segments_written": dg.MetadataValue.int(report.segments_written),
            "segment_count": dg.MetadataValue.int(total),
            "longest_segment_tokens": dg.MetadataValue.int(report.longest_segment_tokens),
            "token_limit": dg.MetadataValue.int(params.max_tokens),
        },
        check_results=check_results,
    )


@dg.asset(
    partitions_def=videos_daily_partition,
    backfill_policy=videos_backfill_policy,
    deps=[segments],
    group_name=RETRIEVAL_GROUP,
    kinds={"pytorch", "postgres"},
    check_specs=checks.EMBEDDINGS_CHECKS,
    description="Sentence-transformers vectors of every segment under the configured model "
    "(the model name is part of the key, so a second model can be embedded beside the first).",
)
def segment_embeddings(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, embedding_model: EmbeddingModelResource
) -> dg.MaterializeResult:
    video_ids = _partition_video_ids(context, warehouse)
    embedder = embedding_model.get()
    with warehouse.session() as conn:
        report = embed_missing(conn, video_ids, embedder)
        # Every other registered model is kept complete too, so a re-cut video (a new transcript)
        # stays searchable under a second model as well; one that cannot load here is reported.
        others: dict[str, int | str] = {}
        for model, source in retrieval_store.maintained_models(conn):
            if model == report.model or not source:
                continue
            try:
                others[model] = embed_missing(conn, video_ids, embedding_model.for_source(source)).segments_embedded
            except EmbeddingModelError as exc:
                context.log.warning(f"model {model} is registered but cannot load here: {exc}")
                others[model] = f"not loaded: {exc}"
        check_results = [
            checks.embeddings_complete(conn, video_ids, report.model, report.dimensions),
            checks.golden_queries(conn, embedder),
        ]
    return dg.MaterializeResult(
        metadata={
            "segments_embedded": dg.MetadataValue.int(report.segments_embedded),
            "model": report.model,
            "dimensions": dg.MetadataValue.int(report.dimensions),
            "seconds": dg.MetadataValue.float(round(report.seconds, 2)),
            "backend": embedder.runtime_name,
            "other_models": dg.MetadataValue.json(others),
        },
        check_results=check_results,
    )
