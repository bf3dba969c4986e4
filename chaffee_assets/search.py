"""Search the warehouse: a thin Python face on the `search_segments` SQL function."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache

import psycopg

from chaffee_assets.retrieval.embedder import Embedder, canonical_model_name
from chaffee_assets.settings import DEFAULT_EMBEDDING_MODEL
from chaffee_assets.warehouse import connect

MODES = ("hybrid", "vector", "text")


@dataclass(frozen=True, slots=True)
class SearchOptions:
    """Ranking knobs; the defaults equal the SQL function's and were chosen by measurement."""

    max_per_video: int | None = 5
    candidates: int = 100
    rrf_k: int = 30
    vector_weight: float = 1.0
    text_weight: float = 1.0
    exact: bool = False
    collapse_overlaps: bool = True


@dataclass(frozen=True, slots=True)
class Hit:
    segment_id: int
    video_id: str
    title: str
    published_at: datetime | None
    start_s: float
    end_s: float
    text: str
    link: str
    score: float
    vector_rank: int | None
    text_rank: int | None

    def as_dict(self) -> dict[str, object]:
        return {
            "video_id": self.video_id,
            "title": self.title,
            "published_at": self.published_at.isoformat() if self.published_at else None,
            "start_s": self.start_s,
            "end_s": self.end_s,
            "text": self.text,
            "score": self.score,
            "link": self.link,
            "segment_id": self.segment_id,
            "vector_rank": self.vector_rank,
            "text_rank": self.text_rank,
        }


_SEARCH_SQL = """
SELECT segment_id, video_id, title, published_at, start_s, end_s, text, link, score, vector_rank, text_rank
FROM search_segments(
    %(query)s, %(embedding)s, k => %(k)s, mode => %(mode)s, model => %(model)s,
    published_from => %(published_from)s, published_to => %(published_to)s, video_ids => %(video_ids)s,
    max_per_video => %(max_per_video)s, candidates => %(candidates)s, rrf_k => %(rrf_k)s,
    vector_weight => %(vector_weight)s, text_weight => %(text_weight)s, exact => %(exact)s,
    collapse_overlaps => %(collapse_overlaps)s)
"""


@cache
def embedder_for(model: str) -> Embedder:
    """One loaded embedder per model per process (loading costs seconds)."""
    return Embedder(model)


def search(
    query: str,
    k: int = 10,
    mode: str = "hybrid",
    *,
    model: str = DEFAULT_EMBEDDING_MODEL,
    published_from: date | None = None,
    published_to: date | None = None,
    video_ids: Sequence[str] | None = None,
    options: SearchOptions | None = None,
    conn: psycopg.Connection | None = None,
    embedder: Embedder | None = None,
) -> list[Hit]:
    """Search segments for `query`; at most `k` hits, best first.

    `mode`: "hybrid" (vector + full text fused by reciprocal rank), "vector" or "text".
    `published_from`/`published_to` are inclusive UTC publish dates. `model` names the embedding
    model whose vectors are searched (name or local path; stored under its canonical name).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if k < 1:
        raise ValueError("k must be at least 1")
    if not query.strip():
        raise ValueError("the query is empty")
    options = options or SearchOptions()
    key = canonical_model_name(model)
    embedding = None
    if mode != "text":
        embedder = embedder or embedder_for(model)
        embedding = embedder.encode([query])[0]
    params = {
        "query": query,
        "embedding": embedding,
        "k": k,
        "mode": mode,
        "model": key,
        "published_from": published_from,
        "published_to": published_to,
        "video_ids": list(video_ids) if video_ids is not None else None,
        "max_per_video": options.max_per_video,
        "candidates": options.candidates,
        "rrf_k": options.rrf_k,
        "vector_weight": options.vector_weight,
        "text_weight": options.text_weight,
        "exact": options.exact,
        "collapse_overlaps": options.collapse_overlaps,
    }
    if conn is not None:
        rows = conn.execute(_SEARCH_SQL, params).fetchall()
    else:
        with connect() as own:
            rows = own.execute(_SEARCH_SQL, params).fetchall()
    return [Hit(*row) for row in rows]


_SNIPPET_SQL = """
SELECT ts_headline('english', t, coalesce(search_or_tsquery(%(query)s), ''::tsquery), %(options)s)
FROM unnest(%(texts)s::text[]) WITH ORDINALITY AS x(t, i)
ORDER BY i
"""


def snippets(
    query: str,
    texts: Sequence[str],
    *,
    conn: psycopg.Connection,
    start: str = "[",
    stop: str = "]",
    words: int = 30,
) -> list[str]:
    """Each text cut to about `words` words around the query's matched words, marked start/stop."""
    if not texts:
        return []
    options = (
        f"StartSel={start}, StopSel={stop}, MaxWords={words}, MinWords={max(words // 2, 1)}, MaxFragments=2"
    )
    rows = conn.execute(_SNIPPET_SQL, {"query": query, "texts": list(texts), "options": options}).fetchall()
    return [row[0] for row in rows]
