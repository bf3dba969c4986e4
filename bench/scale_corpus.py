"""A library of distinct text at channel-history scale, recombined from real transcripts.

Embedding 200 000 windows on two CPU cores would take hours, and copies of one library with
perturbed vectors (the old stress case) make every posting list and every HNSW neighbourhood a
cluster of near-twins. So the library is recombined instead:

- every video of both evaluation libraries is cut into ~20 s blocks (cue-aligned, ≤ 128 word
  pieces) and each block is embedded once (cached on disk by exact text);
- a synthetic video interleaves runs of 3–8 consecutive blocks drawn from three random source
  videos, so its text is real speech in an order no real video has;
- its windows are three consecutive blocks every two blocks (60 s windows, 40 s stride), and a
  window's vector is the normalised sum of its blocks' vectors (a window of recombined text has
  no embedding of its own to reuse; the sum keeps vectors distinct and realistically spread).

Publish dates spread over 2015–2026, so date filters have something to select.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_support import EVAL, CachedEmbedder, read_cues  # noqa: E402

from chaffee_assets.retrieval.segmenter import Segment, SegmentParams, segment_cues  # noqa: E402

BLOCK_PARAMS = SegmentParams(window_s=20.0, stride_s=20.0, max_tokens=128, reserve_tokens=0)
WINDOW_BLOCKS = 3
STRIDE_BLOCKS = 2


@dataclass(frozen=True)
class Block:
    text: str
    seconds: float
    vector: np.ndarray


@dataclass(frozen=True)
class SyntheticVideo:
    video_id: str
    title: str
    published_at: datetime
    segments: list[Segment]
    vectors: np.ndarray  # one row per segment


def source_blocks(
    embedder: CachedEmbedder, leave_out: Mapping[str, list[tuple[float, float]]] | None = None
) -> list[list[Block]]:
    """Each real video of both evaluation libraries as its sequence of embedded ~20 s blocks.

    `leave_out`: time ranges by video id whose overlapping blocks are dropped (an evaluation's
    answers, so that their words exist only in their own video)."""
    leave_out = leave_out or {}
    videos: list[list[tuple[str, float]]] = []
    for library in ("huberman_dev", "huberman_chapters"):
        folder = EVAL / library / "library"
        for info in sorted(folder.glob("*.info.json")):
            vid = info.name.removesuffix(".info.json")
            caption = next(p for p in folder.iterdir() if p.name.startswith(f"{vid}.en."))
            cut = segment_cues(read_cues(caption), BLOCK_PARAMS, embedder.count_tokens)
            ranges = leave_out.get(vid, [])
            videos.append(
                [
                    (s.text, max(s.end_s - s.start_s, 1.0))
                    for s in cut
                    if not any(s.start_s <= end and s.end_s >= start for start, end in ranges)
                ]
            )
    texts = [text for video in videos for text, _ in video]
    vectors = iter(embedder.encode(texts))
    return [[Block(text, seconds, next(vectors)) for text, seconds in video] for video in videos]


def synthetic_videos(
    sources: list[list[Block]], target_segments: int, seed: int = 7
) -> Iterator[SyntheticVideo]:
    """Recombined videos until `target_segments` windows exist."""
    rng = random.Random(seed)
    first_day = datetime(2015, 1, 1, tzinfo=UTC)
    span_days = (datetime(2026, 11, 30, tzinfo=UTC) - first_day).days
    made = 0
    number = 0
    while made < target_segments:
        number += 1
        picked = rng.sample([s for s in sources if len(s) >= 8], 3)
        cursors = [rng.randrange(len(s)) for s in picked]
        blocks: list[Block] = []
        length = rng.randint(60, 180)  # 20–60 minutes
        while len(blocks) < length:
            k = rng.randrange(3)
            run = rng.randint(3, 8)
            source = picked[k]
            for _ in range(run):
                blocks.append(source[cursors[k] % len(source)])
                cursors[k] += 1
        video = _windows(f"scale{number:05d}", f"Recombined talk {number}", blocks)
        published = first_day + timedelta(days=rng.randrange(span_days), seconds=rng.randrange(86_400))
        made += len(video.segments)
        yield SyntheticVideo(video.video_id, video.title, published, video.segments, video.vectors)


def load_through_product(
    url: str, videos: list[SyntheticVideo], model: str, dimension: int
) -> dict[str, float]:
    """Write the library the way a backfill does, indexes and statistics maintained as rows arrive.

    Returns seconds per phase: video rows, transcripts, segments (GIN index and the BM25 statistics
    triggers), embeddings (binary COPY and the model's HNSW index).
    """
    import time

    from chaffee_assets.ingest import store as ingest_store
    from chaffee_assets.ingest.cues import Cue
    from chaffee_assets.ingest.videos import Video
    from chaffee_assets.retrieval import store
    from chaffee_assets.warehouse import connect

    figures: dict[str, float] = {}
    with connect(url, autocommit=True) as conn:
        store.register_model(conn, model, dimension, source=model)
        t0 = time.perf_counter()
        ingest_store.upsert_videos(
            conn,
            [
                Video(v.video_id, "library", v.title, v.published_at, duration_s=v.segments[-1].end_s)
                for v in videos
            ],
        )
        figures["videos_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        transcript_ids = {}
        for v in videos:
            cues = [Cue(s.start_s, s.end_s, s.text) for s in v.segments[::2]]
            transcript_ids[v.video_id] = ingest_store.write_transcript(
                conn, v.video_id, cues, source="library_file", language="en"
            ).transcript_id
        figures["transcripts_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        segment_ids = {
            v.video_id: store.replace_segments(conn, v.video_id, transcript_ids[v.video_id], v.segments)
            for v in videos
        }
        figures["segments_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        batch: list[tuple[int, np.ndarray]] = []
        for v in videos:
            batch.extend(zip(segment_ids[v.video_id], v.vectors, strict=True))
            if len(batch) >= 5000:
                store.write_embeddings(conn, model, batch)
                batch = []
        if batch:
            store.write_embeddings(conn, model, batch)
        figures["embeddings_s"] = time.perf_counter() - t0
        conn.execute("ANALYZE")
    return {k: round(v, 1) for k, v in figures.items()}


def copied_videos(
    sources: list[list[Block]], target_segments: int, noise: float = 0.3, seed: int = 7
) -> Iterator[SyntheticVideo]:
    """The stress case: the real videos' windows copied until `target_segments` exist, each copy's
    vectors moved by noise of norm `noise` (every window has dozens of near-twins)."""
    rng = np.random.default_rng(seed)
    first_day = datetime(2015, 1, 1, tzinfo=UTC)
    made = copy = 0
    while made < target_segments:
        copy += 1
        for number, blocks in enumerate(sources):
            if made >= target_segments:
                return
            video = _windows(f"copy{copy:03d}-{number:04d}", f"Copy {copy} of talk {number}", blocks)
            jitter = rng.standard_normal(video.vectors.shape).astype(np.float32)
            moved = video.vectors + noise * jitter / np.linalg.norm(jitter, axis=1, keepdims=True)
            made += len(video.segments)
            yield SyntheticVideo(
                video.video_id,
                video.title,
                first_day + timedelta(days=int(rng.integers(0, 4300))),
                video.segments,
                (moved / np.linalg.norm(moved, axis=1, keepdims=True)).astype(np.float32),
            )


def _windows(video_id: str, title: str, blocks: list[Block]) -> SyntheticVideo:
    clock = [0.0]
    for block in blocks:
        clock.append(clock[-1] + block.seconds)
    segments, vectors = [], []
    for i in range(0, max(len(blocks) - WINDOW_BLOCKS + 1, 1), STRIDE_BLOCKS):
        part = blocks[i : i + WINDOW_BLOCKS]
        vec = np.sum([b.vector for b in part], axis=0)
        end = clock[min(i + WINDOW_BLOCKS, len(blocks))]
        segments.append(Segment(len(segments), clock[i], end, " ".join(b.text for b in part)))
        vectors.append(vec / np.linalg.norm(vec))
    return SyntheticVideo(video_id, title, datetime(2015, 1, 1, tzinfo=UTC), segments, np.stack(vectors))
