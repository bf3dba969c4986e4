"""What a warehouse holds, keyed by video id and ordinal, so databases filled by different histories compare.

Surrogate keys (transcript_id, segment_id) and wall-clock columns (first_seen_at, fetched_at, …)
depend on how a database got its rows, not on what the rows say; they are left out. Vectors are
compared with a tolerance: a segment embedded in another batch may differ in the last bits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import psycopg

_VIDEOS = """
SELECT video_id, source, title, description, published_at, partition_date, duration_s, channel,
       channel_id, tags, thumbnail_url, url, language, availability
FROM videos ORDER BY video_id COLLATE "C"
"""
_TRANSCRIPTS = """
SELECT video_id, version, is_current, source, language, model, cues, cue_count, audio_seconds, cost_usd
FROM transcripts ORDER BY video_id COLLATE "C", version
"""
# `attempts` counts how often a video was tried, which a re-run raises by design; it is not compared.
_ATTEMPTS = """
SELECT video_id, failure_class, message, retry_after
FROM transcript_attempts ORDER BY video_id COLLATE "C"
"""
_SEGMENTS = """
SELECT s.video_id, t.version, s.ordinal, s.start_s, s.end_s, s.text
FROM segments s JOIN transcripts t USING (transcript_id)
ORDER BY s.video_id COLLATE "C", s.ordinal
"""
_EMBEDDINGS = """
SELECT s.video_id, s.ordinal, e.model, e.embedding::real[]
FROM segment_embeddings e JOIN segments s USING (segment_id)
"""
_LEXEMES = 'SELECT lexeme, segments FROM segment_lexemes ORDER BY lexeme COLLATE "C"'
_TEXT_TOTALS = "SELECT segments, lexemes FROM segment_text_totals"
_MODELS = 'SELECT model, dimensions FROM embedding_models ORDER BY model COLLATE "C"'
_SPEND = "SELECT video_id, engine, model, audio_seconds, usd FROM asr_spend ORDER BY 1, 2, 3, 4, 5"

EmbeddingKey = tuple[str, int, str]  # (video_id, segment ordinal, model)


@dataclass(frozen=True)
class WarehouseSnapshot:
    videos: list[tuple] = field(default_factory=list)
    transcripts: list[tuple] = field(default_factory=list)
    attempts: list[tuple] = field(default_factory=list)
    segments: list[tuple] = field(default_factory=list)
    embeddings: dict[EmbeddingKey, np.ndarray] = field(default_factory=dict)
    embedding_rows: int = 0
    lexemes: list[tuple] = field(default_factory=list)
    text_totals: list[tuple] = field(default_factory=list)
    models: list[tuple] = field(default_factory=list)
    spend: list[tuple] = field(default_factory=list)

    def rows_by_video(self, table: str) -> dict[str, list]:
        """`table`'s rows (for segment_embeddings: their keys) grouped by video id."""
        rows = list(self.embeddings) if table == "segment_embeddings" else getattr(self, table)
        grouped: dict[str, list] = {}
        for row in rows:
            grouped.setdefault(row[0], []).append(row)
        return grouped

    def counts(self) -> dict[str, int]:
        return {
            "videos": len(self.videos),
            "transcripts": len(self.transcripts),
            "transcript_attempts": len(self.attempts),
            "segments": len(self.segments),
            "segment_embeddings": self.embedding_rows,
            "segment_lexemes": len(self.lexemes),
            "asr_spend": len(self.spend),
        }


def take_snapshot(url: str) -> WarehouseSnapshot:
    with psycopg.connect(url) as conn:
        embedding_rows = conn.execute(_EMBEDDINGS).fetchall()
        return WarehouseSnapshot(
            videos=conn.execute(_VIDEOS).fetchall(),
            transcripts=conn.execute(_TRANSCRIPTS).fetchall(),
            attempts=conn.execute(_ATTEMPTS).fetchall(),
            segments=conn.execute(_SEGMENTS).fetchall(),
            embeddings={(v, o, m): np.asarray(e, dtype=np.float32) for v, o, m, e in embedding_rows},
            embedding_rows=len(embedding_rows),
            lexemes=conn.execute(_LEXEMES).fetchall(),
            text_totals=conn.execute(_TEXT_TOTALS).fetchall(),
            models=conn.execute(_MODELS).fetchall(),
            spend=conn.execute(_SPEND).fetchall(),
        )


def differences(actual: WarehouseSnapshot, expected: WarehouseSnapshot) -> list[str]:
    """Where `actual` differs from `expected`, table by table (empty: the same rows)."""
    found: list[str] = []
    if actual.counts() != expected.counts():
        found.append(f"row counts {actual.counts()} != {expected.counts()}")
    for table in (
        "videos",
        "transcripts",
        "attempts",
        "segments",
        "lexemes",
        "text_totals",
        "models",
        "spend",
    ):
        mine, theirs = getattr(actual, table), getattr(expected, table)
        if mine != theirs:
            extra = [row for row in mine if row not in theirs][:3]
            missing = [row for row in theirs if row not in mine][:3]
            found.append(f"{table} differ: unexpected {_short(extra)}, missing {_short(missing)}")
    if actual.embeddings.keys() != expected.embeddings.keys():
        extra = sorted(actual.embeddings.keys() - expected.embeddings.keys())[:3]
        missing = sorted(expected.embeddings.keys() - actual.embeddings.keys())[:3]
        found.append(f"embedded segments differ: unexpected {extra}, missing {missing}")
    else:
        off = [
            key
            for key, vector in actual.embeddings.items()
            if not np.allclose(vector, expected.embeddings[key], atol=1e-4)
        ]
        if off:
            found.append(f"{len(off)} vector(s) differ, e.g. {off[:3]}")
    return found


def _short(rows: list[tuple]) -> str:
    return repr([tuple(str(value)[:60] for value in row) for row in rows])


def consistency_problems(url: str) -> list[str]:
    """Breaches of the warehouse's invariants, in words (empty: consistent).

    Every transcribed video has exactly one current transcript; a video's segments have the
    ordinals 0..n-1 and all come from its current transcript; every segment has exactly one vector
    per registered model that has any; the BM25 statistics and postings match the segments.
    """
    queries = {
        "videos with transcripts but not exactly one current": """
            SELECT video_id FROM transcripts GROUP BY video_id HAVING count(*) FILTER (WHERE is_current) <> 1
        """,
        "videos whose segment ordinals are not 0..n-1": """
            SELECT video_id FROM segments GROUP BY video_id
            HAVING min(ordinal) <> 0 OR max(ordinal) <> count(*) - 1 OR count(DISTINCT ordinal) <> count(*)
        """,
        "segments not cut from their video's current transcript": """
            SELECT s.segment_id FROM segments s JOIN transcripts t USING (transcript_id)
            WHERE NOT t.is_current OR t.video_id <> s.video_id
        """,
        "segments missing a vector of a model in use": """
            SELECT s.segment_id, m.model FROM segments s
            CROSS JOIN (SELECT DISTINCT model FROM segment_embeddings) m
            WHERE NOT EXISTS (SELECT 1 FROM segment_embeddings e
                              WHERE e.segment_id = s.segment_id AND e.model = m.model)
        """,
        "segments with more than one vector per model": """
            SELECT segment_id, model FROM segment_embeddings GROUP BY segment_id, model HAVING count(*) > 1
        """,
        "lexeme statistics that do not match the segments": """
            (SELECT lexeme, count(*) FROM segments, unnest(tsvector_to_array(tsv)) AS lexeme GROUP BY lexeme
             EXCEPT SELECT lexeme, segments FROM segment_lexemes)
            UNION ALL
            (SELECT lexeme, segments FROM segment_lexemes
             EXCEPT SELECT lexeme, count(*) FROM segments, unnest(tsvector_to_array(tsv)) AS lexeme
                    GROUP BY lexeme)
        """,
        "postings that do not match the segments' lexemes": """
            (SELECT t.lexeme, s.video_id, s.segment_id, coalesce(array_length(t.positions, 1), 1), s.word_count
             FROM segments s, unnest(s.tsv) t
             EXCEPT SELECT lexeme, video_id, segment_id, tf, words FROM segment_postings)
            UNION ALL
            (SELECT lexeme, video_id, segment_id, tf, words FROM segment_postings
             EXCEPT SELECT t.lexeme, s.video_id, s.segment_id, coalesce(array_length(t.positions, 1), 1), s.word_count
                    FROM segments s, unnest(s.tsv) t)
        """,
        "segment totals that do not match the segments": """
            SELECT segments FROM segment_text_totals
            WHERE segments <> (SELECT count(*) FROM segments)
               OR lexemes <> (SELECT coalesce(sum(length(tsv)), 0) FROM segments)
        """,
    }
    problems: list[str] = []
    with psycopg.connect(url) as conn:
        for breach, query in queries.items():
            rows = conn.execute(query).fetchall()
            if rows:
                problems.append(f"{len(rows)} {breach}, e.g. {rows[:3]}")
    return problems
