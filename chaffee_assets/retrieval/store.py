"""Warehouse writes for retrieval: a video's segments, embedding models and their vectors."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence

import numpy as np
import psycopg
from psycopg import sql

from chaffee_assets.retrieval.models import model_card
from chaffee_assets.retrieval.segmenter import Segment

_INDEX_PREFIX = "segment_embeddings_hnsw_"
_MAX_IDENTIFIER = 63  # PostgreSQL truncates longer identifiers silently


def hnsw_index_name(model: str) -> str:
    """A safe, stable index name for a model: lower snake case, hashed when too long.

    The default model's name matches the index migration 0001 creates.
    """
    slug = re.sub(r"[^a-z0-9]+", "_", model.lower()).strip("_") or "model"
    name = _INDEX_PREFIX + slug
    if len(name) > _MAX_IDENTIFIER:
        digest = hashlib.sha1(model.encode()).hexdigest()[:10]
        name = f"{name[: _MAX_IDENTIFIER - 11]}_{digest}"
    return name


def maintained_models(conn: psycopg.Connection) -> list[tuple[str, str | None]]:
    """(model, source) of every registered model whose vectors are kept complete."""
    return conn.execute(
        "SELECT model, source FROM embedding_models WHERE maintained ORDER BY registered_at, model"
    ).fetchall()


def replace_segments(
    conn: psycopg.Connection,
    video_id: str,
    transcript_id: int,
    segments: Sequence[Segment],
    *,
    keep_current: bool = False,
) -> list[int] | None:
    """Replace a video's segments in one transaction; returns the new segment ids in order.

    Deleting cascades to the old segments' embeddings, which no longer describe any text.
    `keep_current`: if, once the video is locked, its segments already come from `transcript_id`
    (another run cut them meanwhile), leave them and their embeddings alone and return None.
    """
    with conn.transaction(), conn.cursor() as cur:
        # Serialise concurrent rewrites of the same video (two runs of one partition).
        cur.execute("SELECT 1 FROM videos WHERE video_id = %s FOR UPDATE", (video_id,))
        if cur.fetchone() is None:
            raise ValueError(f"video {video_id} is not in the warehouse; write its videos row first")
        if keep_current:
            cur.execute(
                "SELECT array_agg(DISTINCT transcript_id) FROM segments WHERE video_id = %s", (video_id,)
            )
            if cur.fetchone()[0] == [transcript_id]:
                return None
        cur.execute("DELETE FROM segments WHERE video_id = %s", (video_id,))
        if not segments:
            return []
        # One statement, so the lexeme-statistics trigger runs once per video, not once per row.
        cur.execute(
            """
            INSERT INTO segments (video_id, transcript_id, ordinal, start_s, end_s, text)
            SELECT %s, %s, o, s, e, t
            FROM unnest(%s::integer[], %s::double precision[], %s::double precision[], %s::text[])
                 AS x(o, s, e, t)
            RETURNING ordinal, segment_id
            """,
            (
                video_id,
                transcript_id,
                [s.ordinal for s in segments],
                [s.start_s for s in segments],
                [s.end_s for s in segments],
                [s.text for s in segments],
            ),
        )
        by_ordinal = dict(cur.fetchall())
        return [by_ordinal[s.ordinal] for s in segments]


def register_model(
    conn: psycopg.Connection, model: str, dimensions: int, *, source: str | None = None
) -> str:
    """Record a model and create its partial HNSW index if missing; returns the index name.

    `source` is what loads the model (a name or a folder): it lets every run keep the vectors of
    every registered model complete, not only the configured one's. The relevance floor of a
    known model is recorded with it (`retrieval/models.py`). Raises ValueError when the model is
    already registered with another dimension.
    """
    index = hnsw_index_name(model)
    card = model_card(model)
    with conn.transaction():
        conn.execute(
            """
            INSERT INTO embedding_models (model, dimensions, source, min_similarity) VALUES (%s, %s, %s, %s)
            ON CONFLICT (model) DO UPDATE SET
                source = coalesce(EXCLUDED.source, embedding_models.source),
                min_similarity = coalesce(embedding_models.min_similarity, EXCLUDED.min_similarity)
            """,
            (model, dimensions, source, card.min_similarity),
        )
        stored = conn.execute(
            "SELECT dimensions FROM embedding_models WHERE model = %s", (model,)
        ).fetchone()[0]
        if stored != dimensions:
            raise ValueError(
                f"model {model} is registered with {stored} dimensions, not {dimensions}; "
                "embed under another model name"
            )
        # Literals cannot be bound in DDL: the model name goes in as a quoted sql.Literal, the
        # dimension as an int literal, the index name as an identifier.
        conn.execute(
            sql.SQL(
                "CREATE INDEX IF NOT EXISTS {index} ON segment_embeddings "
                "USING hnsw ((embedding::vector({dims})) vector_cosine_ops) WHERE model = {model}"
            ).format(index=sql.Identifier(index), dims=sql.Literal(int(dimensions)), model=sql.Literal(model))
        )
    return index


def segments_missing_embeddings(
    conn: psycopg.Connection, model: str, video_ids: Sequence[str] | None = None
) -> list[tuple[int, str]]:
    """(segment_id, text) of the segments with no vector under `model`.

    `video_ids=None` means every video.
    """
    return conn.execute(
        """
        SELECT s.segment_id, s.text
        FROM segments s
        WHERE (%(ids)s::text[] IS NULL OR s.video_id = ANY(%(ids)s::text[]))
          AND NOT EXISTS (SELECT 1 FROM segment_embeddings e
                          WHERE e.segment_id = s.segment_id AND e.model = %(model)s)
        ORDER BY s.segment_id
        """,
        {"ids": list(video_ids) if video_ids is not None else None, "model": model},
    ).fetchall()


def write_embeddings(
    conn: psycopg.Connection, model: str, rows: Iterable[tuple[int, np.ndarray]], *, upsert: bool = True
) -> int:
    """Bulk-write (segment_id, vector) rows under `model` with binary COPY; returns rows written.

    Rows go to a temporary table first, then into `segment_embeddings` with ON CONFLICT DO
    UPDATE, so a re-run replaces vectors and never duplicates them. `upsert=False` copies straight
    into the table (faster; only for rows known to be new).
    """
    written = 0
    with conn.transaction(), conn.cursor() as cur:
        if upsert:
            cur.execute(
                "CREATE TEMP TABLE IF NOT EXISTS _embeddings_in "
                "(segment_id bigint, embedding vector) ON COMMIT DELETE ROWS"
            )
            # Inside a caller's open transaction this block is a savepoint and no commit empties
            # the table: an earlier write's rows would be written again, under this call's model.
            cur.execute("DELETE FROM _embeddings_in")
            target = "_embeddings_in (segment_id, embedding)"
        else:
            target = "segment_embeddings (segment_id, model, embedding)"
        with cur.copy(f"COPY {target} FROM STDIN WITH (FORMAT BINARY)") as copy:
            if upsert:
                copy.set_types(["int8", "vector"])
            else:
                copy.set_types(["int8", "text", "vector"])
            for segment_id, vector in rows:
                vec = np.asarray(vector, dtype=np.float32)
                copy.write_row((segment_id, vec) if upsert else (segment_id, model, vec))
                written += 1
        if upsert:
            cur.execute(
                """
                INSERT INTO segment_embeddings (segment_id, model, embedding)
                SELECT i.segment_id, %s, i.embedding FROM _embeddings_in i
                -- A concurrent run may have re-cut the video since these vectors were computed:
                -- vectors of segments that no longer exist describe no text, so they are dropped.
                JOIN segments s ON s.segment_id = i.segment_id
                ON CONFLICT (segment_id, model)
                DO UPDATE SET embedding = EXCLUDED.embedding, embedded_at = now()
                """,
                (model,),
            )
    return written
