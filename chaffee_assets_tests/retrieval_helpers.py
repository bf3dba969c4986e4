"""Test helpers for retrieval: put eval-library videos into a warehouse as the pipeline would."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from chaffee_assets.ingest.captions import parse_caption_file
from chaffee_assets.retrieval import store
from chaffee_assets.retrieval.embedder import Embedder
from chaffee_assets.retrieval.segmenter import SegmentParams, reference_token_counter, segment_cues


def caption_file(library: Path, video_id: str) -> Path:
    return next(p for p in library.iterdir() if p.name.startswith(f"{video_id}.en."))


def insert_video(conn: psycopg.Connection, library: Path, video_id: str) -> int:
    """Write the videos row and a version-1 transcript from the library files; returns transcript_id."""
    info = json.loads((library / f"{video_id}.info.json").read_text(encoding="utf-8"))
    cues = parse_caption_file(caption_file(library, video_id))
    published = datetime.strptime(info["upload_date"], "%Y%m%d").replace(tzinfo=UTC)
    with conn.transaction():
        conn.execute(
            "INSERT INTO videos (video_id, source, title, published_at, url) VALUES (%s, 'library', %s, %s, %s)",
            (video_id, info["title"], published, info["webpage_url"]),
        )
        return conn.execute(
            "INSERT INTO transcripts (video_id, version, source, language, cues) "
            "VALUES (%s, 1, 'library_file', 'en', %s::jsonb) RETURNING transcript_id",
            (video_id, json.dumps([c.as_dict() for c in cues])),
        ).fetchone()[0]


def segment_video(conn: psycopg.Connection, video_id: str) -> list[int]:
    transcript_id, cues = conn.execute(
        "SELECT transcript_id, cues FROM transcripts WHERE video_id = %s AND is_current", (video_id,)
    ).fetchone()
    from chaffee_assets.ingest.cues import Cue

    segments = segment_cues(
        [Cue(c["start"], c["end"], c["text"]) for c in cues], SegmentParams(), reference_token_counter()
    )
    return store.replace_segments(conn, video_id, transcript_id, segments)


def embed_all(conn: psycopg.Connection, embedder: Embedder) -> int:
    store.register_model(conn, embedder.model_name, embedder.dimension, source=embedder.source)
    missing = store.segments_missing_embeddings(conn, embedder.model_name)
    vectors = embedder.encode_passages([text for _, text in missing])
    return store.write_embeddings(
        conn, embedder.model_name, zip([m[0] for m in missing], vectors, strict=True)
    )


def load_library(conn: psycopg.Connection, library: Path, video_ids: list[str], embedder: Embedder) -> None:
    """Videos, transcripts, segments and embeddings for these videos of a library."""
    for video_id in video_ids:
        insert_video(conn, library, video_id)
        segment_video(conn, video_id)
    embed_all(conn, embedder)


def tiny_model(path: Path, dimension: int = 32) -> Path:
    """A sentence-transformers model with random weights and its own dimension, built offline.

    It reuses MiniLM's vocabulary so its tokenizer behaves; its vectors mean nothing, which is
    enough to show a second model's rows and index live beside the first.
    """
    from sentence_transformers import SentenceTransformer, models
    from transformers import BertConfig, BertModel, BertTokenizerFast

    from chaffee_assets.retrieval.embedder import default_model_path

    tokenizer = BertTokenizerFast.from_pretrained(str(default_model_path()))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=dimension,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=2 * dimension,
        max_position_embeddings=128,
    )
    raw = path / "raw"
    BertModel(config).save_pretrained(raw)
    tokenizer.save_pretrained(raw)
    transformer = models.Transformer(str(raw), max_seq_length=128)
    pooling = models.Pooling(dimension, pooling_mode="mean")
    out = path / "tiny-random-st"
    SentenceTransformer(modules=[transformer, pooling], device="cpu").save(str(out))
    return out
