"""From a video's current transcript to searchable rows: segment it, then embed what is missing.

The steps the `segments` and `segment_embeddings` assets run for each partition, kept out of the
Dagster wiring so they can be called and tested on their own.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from psycopg import Connection

from chaffee_assets.ingest.cues import Cue
from chaffee_assets.retrieval import store
from chaffee_assets.retrieval.embedder import Embedder, document_text
from chaffee_assets.retrieval.segmenter import SegmentParams, segment_cues


@dataclass(frozen=True, slots=True)
class SegmentationReport:
    videos_segmented: int
    videos_unchanged: int
    segments_written: int
    longest_segment_tokens: int


def segment_videos(
    conn: Connection,
    video_ids: Sequence[str],
    embedder: Embedder,
    *,
    params: SegmentParams | None = None,
    force: bool = False,
) -> SegmentationReport:
    """(Re)write the segments of each video whose segments do not come from its current transcript.

    Segments already cut from the current transcript are left alone unless `force`, so re-running
    a partition keeps their ids and therefore their embeddings.
    """
    params = params or SegmentParams(max_tokens=embedder.max_seq_length)
    rows = conn.execute(
        """
        SELECT t.video_id, t.transcript_id, t.cues,
               (SELECT array_agg(DISTINCT s.transcript_id) FROM segments s WHERE s.video_id = t.video_id)
        FROM transcripts t
        WHERE t.is_current AND t.video_id = ANY(%s)
        ORDER BY t.video_id
        """,
        (list(video_ids),),
    ).fetchall()
    segmented = unchanged = written = longest = 0
    for video_id, transcript_id, cue_dicts, segmented_from in rows:
        if not force and segmented_from == [transcript_id]:
            unchanged += 1
            continue
        cues = [Cue(float(c["start"]), float(c["end"]), c["text"]) for c in cue_dicts]
        segments = segment_cues(cues, params, count_tokens=embedder.count_tokens)
        if store.replace_segments(conn, video_id, transcript_id, segments, keep_current=not force) is None:
            unchanged += 1  # a concurrent run cut them from the same transcript first
            continue
        segmented += 1
        written += len(segments)
        if segments:
            longest = max(longest, max(embedder.count_tokens(s.text) for s in segments))
    return SegmentationReport(segmented, unchanged, written, longest)


@dataclass(frozen=True, slots=True)
class EmbeddingReport:
    model: str
    dimensions: int
    segments_embedded: int
    seconds: float


def embed_missing(
    conn: Connection,
    video_ids: Sequence[str] | None,
    embedder: Embedder,
    *,
    params: SegmentParams | None = None,
    batch_size: int = 512,
) -> EmbeddingReport:
    """Embed every segment of these videos that has no vector under the embedder's model.

    Batches bound memory and make a killed run lose at most one batch of work: each batch is
    committed as it is written, and the next run picks up what is still missing.
    """
    started = time.perf_counter()
    params = params or SegmentParams(max_tokens=embedder.max_seq_length)
    store.register_model(conn, embedder.model_name, embedder.dimension)
    pending = store.segments_missing_embeddings(conn, embedder.model_name, video_ids)
    for offset in range(0, len(pending), batch_size):
        batch = pending[offset : offset + batch_size]
        texts = [
            document_text(
                title, text, count_tokens=embedder.count_tokens, reserve_tokens=params.reserve_tokens
            )
            for _, title, text in batch
        ]
        vectors = embedder.encode(texts)
        store.write_embeddings(
            conn, embedder.model_name, zip((row[0] for row in batch), vectors, strict=True)
        )
    return EmbeddingReport(
        embedder.model_name, embedder.dimension, len(pending), time.perf_counter() - started
    )
