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
from chaffee_assets.retrieval.embedder import Embedder
from chaffee_assets.retrieval.segmenter import SegmentParams, reference_token_counter, segment_cues


@dataclass(frozen=True, slots=True)
class SegmentationReport:
    videos_segmented: int
    videos_unchanged: int
    segments_written: int
    longest_segment_tokens: int


def segment_videos(
    conn: Connection,
    video_ids: Sequence[str],
    *,
    params: SegmentParams | None = None,
    force: bool = False,
) -> SegmentationReport:
    """(Re)write the segments of each video whose segments do not come from its current transcript.

    Segments already cut from the current transcript are left alone unless `force`, so re-running
    a partition keeps their ids and therefore every model's embeddings. Segments do not depend on
    the embedding model (they are cut to the reference tokenizer), so switching models never
    re-cuts them.
    """
    params = params or SegmentParams()
    count_tokens = reference_token_counter()
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
        segments = segment_cues(cues, params, count_tokens=count_tokens)
        if store.replace_segments(conn, video_id, transcript_id, segments, keep_current=not force) is None:
            unchanged += 1  # a concurrent run cut them from the same transcript first
            continue
        segmented += 1
        written += len(segments)
        if segments:
            longest = max(longest, max(count_tokens(s.text) for s in segments))
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
    batch_size: int = 512,
) -> EmbeddingReport:
    """Embed every segment of these videos that has no vector under the embedder's model.

    What is embedded is the segment's own words: a video's title is not glued on, because on the
    channel's many live Q&A videos the title says nothing about any one answer and pulls every
    segment of the video towards it (docs/retrieval.md measures it).

    Batches bound memory and make a killed run lose at most one batch of work: each batch is
    committed as it is written, and the next run picks up what is still missing.
    """
    started = time.perf_counter()
    store.register_model(conn, embedder.model_name, embedder.dimension, source=embedder.source)
    pending = store.segments_missing_embeddings(conn, embedder.model_name, video_ids)
    for offset in range(0, len(pending), batch_size):
        batch = pending[offset : offset + batch_size]
        vectors = embedder.encode_passages([text for _, text in batch])
        store.write_embeddings(
            conn, embedder.model_name, zip((row[0] for row in batch), vectors, strict=True)
        )
    return EmbeddingReport(
        embedder.model_name, embedder.dimension, len(pending), time.perf_counter() - started
    )
