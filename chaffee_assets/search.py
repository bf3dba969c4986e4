"""Search the warehouse: a thin Python face on the `search_segments` SQL function.

The question is embedded here (with the model's query prompt), ranked in SQL, and optionally
re-ranked by a cross-encoder (`CHAFFEE_RERANKER`) over the best fused candidates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from functools import cache
from typing import TYPE_CHECKING

import psycopg
from psycopg.rows import dict_row

from chaffee_assets.retrieval.seek import DEFAULT_RULE, SeekRule
from chaffee_assets.settings import settings
from chaffee_assets.warehouse import connect

if TYPE_CHECKING:
    from chaffee_assets.retrieval.embedder import Embedder
    from chaffee_assets.retrieval.reranker import Reranker

MODES = ("hybrid", "vector", "text")
DEFAULT_MODE = "hybrid"


def configured_model() -> str:
    """The embedding model searches use: `CHAFFEE_EMBEDDING_MODEL`, else the packaged MiniLM."""
    return settings().embedding_model


def configured_reranker() -> str | None:
    """The cross-encoder that re-ranks the fused candidates (`CHAFFEE_RERANKER`), or None."""
    return settings().reranker


@dataclass(frozen=True, slots=True)
class SearchOptions:
    """Ranking knobs; the defaults equal the SQL function's and were chosen by measurement."""

    max_per_video: int | None = 5
    candidates: int = 100
    fusion: str = "convex"  # or "rrf"
    alpha: float = 0.55  # the cosine's weight in convex fusion
    bm25_k1: float = 0.9  # BM25 term-frequency saturation
    bm25_b: float = 0.4  # BM25 length normalisation
    rrf_k: int = 30
    vector_weight: float = 1.0
    text_weight: float = 1.0
    exact: bool = False
    collapse_overlaps: bool = True
    min_similarity: float | None = None  # None: the model's floor (embedding_models)
    rerank_depth: int = 30  # fused hits a reranker re-scores
    precise_seek: bool = True  # each link opens at the cue answering the question (retrieval/seek.py)


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
    similarity: float | None = None  # cosine to the question
    text_score: float | None = None  # BM25; None when the segment holds none of the question's words
    weak: bool | None = None  # only weakly related (retrieval/relevance.py); None when not judged
    rerank_score: float | None = None
    # The ranked window's bounds; `start_s` and `link` open at the cue inside it that answers.
    window_start_s: float | None = None
    window_end_s: float | None = None
    # The share of the question's word weight (IDF) the window says; None when the question has no words.
    matched_share: float | None = None
    host_share: float | None = None  # the host's share of the moment's speech; None: unknown
    speaker: str | None = None  # who speaks most of it (an enrolled name or "other"); None: unknown

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
            "similarity": None if self.similarity is None else round(self.similarity, 4),
            "text_score": None if self.text_score is None else round(self.text_score, 4),
            "weak": self.weak,
            "rerank_score": self.rerank_score,
            "window_start_s": self.window_start_s,
            "window_end_s": self.window_end_s,
            "matched_share": None if self.matched_share is None else round(self.matched_share, 4),
            "host_share": None if self.host_share is None else round(self.host_share, 3),
            "speaker": self.speaker,
        }


# The function returns who speaks in each hit (segment_speakers) and, with `spoken_by => 'host'`,
# keeps only moments the host speaks at least half of (docs/speakers.md).
_SEARCH_SQL = """
SELECT segment_id, video_id, title, published_at, start_s, end_s, text, link, score, vector_rank,
       text_rank, similarity, text_score, weak, NULL::float8 AS rerank_score, host_share, speaker
FROM search_segments(
    %(query)s, %(embedding)s, k => %(k)s, mode => %(mode)s, model => %(model)s,
    published_from => %(published_from)s, published_to => %(published_to)s, video_ids => %(video_ids)s,
    max_per_video => %(max_per_video)s, candidates => %(candidates)s, rrf_k => %(rrf_k)s,
    vector_weight => %(vector_weight)s, text_weight => %(text_weight)s, exact => %(exact)s,
    collapse_overlaps => %(collapse_overlaps)s, min_similarity => %(min_similarity)s,
    fusion => %(fusion)s, alpha => %(alpha)s, bm25_k1 => %(bm25_k1)s, bm25_b => %(bm25_b)s,
    spoken_by => %(spoken_by)s)
"""
SPEAKERS = ("host",)


@cache
def embedder_for(model: str, threads: int | None = None) -> Embedder:
    """One embedder per model per process (loading costs seconds; the web server keeps it).

    `threads`: cores one question's embedding may use (the server gives each request one: a
    question is one short sentence and concurrency comes from the requests).
    """
    from chaffee_assets.retrieval.embedder import Embedder

    config = settings()
    return Embedder(model, device=config.embedding_device, backend=config.embedding_backend, threads=threads)


@cache
def reranker_for(name: str) -> Reranker:
    from chaffee_assets.retrieval.reranker import Reranker

    return Reranker(name)


def search(
    query: str,
    k: int = 10,
    mode: str = DEFAULT_MODE,
    *,
    model: str | None = None,
    published_from: date | None = None,
    published_to: date | None = None,
    video_ids: Sequence[str] | None = None,
    options: SearchOptions | None = None,
    conn: psycopg.Connection | None = None,
    embedder: Embedder | None = None,
    reranker: str | Reranker | None = None,
    judge_text: bool = False,
    speaker: str | None = None,
) -> list[Hit]:
    """Search segments for `query`; at most `k` hits, best first.

    `mode`: "hybrid" (vector + full text fused by reciprocal rank), "vector" or "text".
    `published_from`/`published_to` are inclusive UTC publish dates. `model` names the embedding
    model whose vectors are searched (name or local path; default `CHAFFEE_EMBEDDING_MODEL`).
    `reranker`: a cross-encoder name/path or instance re-scoring the fused hits (default
    `CHAFFEE_RERANKER`; pass "" for none). `judge_text`: in text mode, also embed the question so
    hits carry their similarity and the weak flag. `speaker="host"`: only moments where the host
    speaks at least half the time (moments whose speakers are unknown are left out).
    """
    from chaffee_assets.retrieval.embedder import canonical_model_name

    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if k < 1:
        raise ValueError("k must be at least 1")
    if not query.strip():
        raise ValueError("the query is empty")
    if speaker is not None and speaker not in SPEAKERS:
        raise ValueError(f"speaker must be one of {', '.join(SPEAKERS)}, not {speaker!r}")
    model = model or configured_model()
    options = options or SearchOptions()
    reranker = configured_reranker() if reranker is None else reranker
    embedding = None
    if mode != "text" or judge_text:
        embedder = embedder or embedder_for(model)
        embedding = embedder.encode_queries([query])[0]
    params = {
        "query": query,
        "embedding": embedding,
        "k": max(k, options.rerank_depth) if reranker else k,
        "spoken_by": speaker,
        "mode": mode,
        "model": canonical_model_name(model),
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
        "min_similarity": options.min_similarity,
        "fusion": options.fusion,
        "alpha": options.alpha,
        "bm25_k1": options.bm25_k1,
        "bm25_b": options.bm25_b,
    }
    if conn is not None:
        rows = conn.cursor(row_factory=dict_row).execute(_SEARCH_SQL, params).fetchall()
    else:
        with connect() as own:
            rows = own.cursor(row_factory=dict_row).execute(_SEARCH_SQL, params).fetchall()
    # By name: the row's columns and the hit's fields are not in the same order.
    hits = [Hit(**row, window_start_s=row["start_s"], window_end_s=row["end_s"]) for row in rows]
    if reranker and hits:
        model_ = reranker_for(reranker) if isinstance(reranker, str) else reranker
        scores = model_.score(query, [hit.text for hit in hits])
        hits = [
            replace(hit, rerank_score=float(s))
            for s, hit in sorted(zip(scores, hits, strict=True), key=lambda pair: -pair[0])
        ]
    hits = hits[:k]
    if hits:
        floor = options.min_similarity
        if conn is not None:
            words = read_words(query, hits, model=canonical_model_name(model), conn=conn)
        else:
            with connect() as own:
                words = read_words(query, hits, model=canonical_model_name(model), conn=own)
        hits = judge(hits, words, floor=words.floor if floor is None else floor)
        if options.precise_seek:
            hits = seek(hits, words)
    return hits


# Per hit, where its words hold the question's lexemes (word positions in the segment's stored
# tsvector, so nothing is parsed again; its last position is the segment's length in words, give
# or take trailing stop words), the lexemes' IDF weights (BM25's, from the library's own
# statistics) and the model's relevance floor: one round trip for all hits, by primary key.
_WORDS_SQL = """
WITH question AS (
    SELECT l.lexeme,
           ln(1 + (t.segments - coalesce(x.segments, 0) + 0.5) / (coalesce(x.segments, 0) + 0.5)) AS idf
    FROM unnest(tsvector_to_array(to_tsvector('english', %(query)s))) AS l(lexeme)
    CROSS JOIN segment_text_totals t
    LEFT JOIN segment_lexemes x ON x.lexeme = l.lexeme
)
SELECT (SELECT max(p) FROM unnest(s.tsv) AS l, unnest(l.positions) AS p),
       (SELECT coalesce(jsonb_object_agg(l.lexeme, l.positions), '{}')
        FROM unnest(s.tsv) AS l
        WHERE l.lexeme IN (SELECT q.lexeme FROM question q)),
       (SELECT coalesce(jsonb_object_agg(q.lexeme, q.idf), '{}') FROM question q),
       (SELECT m.min_similarity FROM embedding_models m WHERE m.model = %(model)s)
FROM unnest(%(segment_ids)s::bigint[]) WITH ORDINALITY AS h(segment_id, i)
LEFT JOIN segments s ON s.segment_id = h.segment_id
ORDER BY h.i
"""


@dataclass(frozen=True, slots=True)
class HitWords:
    """What the hits' own words say about the question: per hit its length in words and the
    positions of the question's lexemes; the lexemes' weights; the model's relevance floor."""

    lengths: list[int]
    positions: list[dict[str, list[int]]]
    weights: dict[str, float]
    floor: float | None


def read_words(query: str, hits: Sequence[Hit], *, model: str, conn: psycopg.Connection) -> HitWords:
    rows = conn.execute(
        _WORDS_SQL, {"query": query, "segment_ids": [hit.segment_id for hit in hits], "model": model}
    ).fetchall()
    return HitWords(
        lengths=[row[0] or 0 for row in rows],
        positions=[row[1] or {} for row in rows],
        weights=rows[0][2] if rows else {},
        floor=rows[0][3] if rows else None,
    )


def judge(hits: Sequence[Hit], words: HitWords, *, floor: float | None) -> list[Hit]:
    """Each hit with the share of the question's words it says and its weak flag, judged on both."""
    from chaffee_assets.retrieval.relevance import is_weak, matched_share

    judged = []
    for hit, positions in zip(hits, words.positions, strict=True):
        share = matched_share(positions, words.weights)
        judged.append(replace(hit, matched_share=share, weak=is_weak(hit.similarity, share, floor)))
    return judged


def youtube_link(video_id: str, second: float) -> str:
    """The video's watch link opening at `second` (whole seconds, as YouTube reads `t`)."""
    return f"https://www.youtube.com/watch?v={video_id}&t={int(second)}s"


def sentence_start(text: str, at: float, window_start: float, window_end: float, rule: SeekRule) -> float:
    """The second where the sentence holding the word at fraction `at` of `text` begins."""
    words = text.split()
    per_word = (window_end - window_start) / len(words)
    index = min(int(at * len(words)), len(words) - 1)
    first = index
    while (
        first > 0
        and index - first < rule.sentence_reach_words
        and not words[first - 1].endswith((".", "?", "!"))
    ):
        first -= 1
    # Reaching the window's first word is no sentence boundary: a window starts on a cue, often
    # mid-sentence, and unpunctuated captions always reach it.
    if first == 0 or not words[first - 1].endswith((".", "?", "!")):
        first = max(index - round(rule.lead_in_s / per_word) if per_word > 0 else index, 0)
    return window_start + per_word * first


def seek(hits: Sequence[Hit], words: HitWords, rule: SeekRule = DEFAULT_RULE) -> list[Hit]:
    """Each hit with `start_s` and `link` moved to where inside its window the question is answered.

    A matched word's second is read from its place among the window's words (the window's words
    span its cues evenly enough for whole-second links: docs/retrieval.md, "Precise seek"); the
    link then steps back to its sentence's start. The window's bounds stay in
    `window_start_s`/`window_end_s` (and `end_s`)."""
    from chaffee_assets.retrieval.seek import TimedCue, best_start

    moved = []
    for hit, length, positions in zip(hits, words.lengths, words.positions, strict=True):
        window_start = hit.window_start_s if hit.window_start_s is not None else hit.start_s
        window_end = hit.window_end_s if hit.window_end_s is not None else hit.end_s
        per_word = (window_end - window_start) / length if length else 0.0
        if window_end - window_start > rule.word_timed_window_s:
            # Paragraph-timed: its start is the one second known to open a passage.
            said = []
        else:
            said = [
                TimedCue(window_start + (position - 1) * per_word, {lexeme: 1})
                for lexeme, places in positions.items()
                for position in places
            ]
        second = best_start(said, words.weights, window_start_s=window_start, rule=rule)
        if second > window_start:
            at = (second - window_start) / (window_end - window_start)
            second = sentence_start(hit.text, at, window_start, window_end, rule)
        moved.append(
            replace(
                hit,
                start_s=second,
                link=youtube_link(hit.video_id, second),
                window_start_s=window_start,
                window_end_s=window_end,
            )
        )
    return moved


def nothing_relevant(hits: Sequence[Hit] | Sequence[dict[str, object]]) -> bool:
    """Whether the hits are only what is nearest, not what answers: every judged hit is weak.

    Takes hits or their `as_dict()` forms (the web passes dicts through)."""
    flags = [hit.get("weak") if isinstance(hit, dict) else hit.weak for hit in hits]
    judged = [flag for flag in flags if flag is not None]
    return bool(judged) and all(judged)


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
    return [whole_words(row[0], text, start, stop) for row, text in zip(rows, texts, strict=True)]


_FRAGMENT_DELIMITER = " ... "  # ts_headline's default FragmentDelimiter


def _inside_word(char: str) -> bool:
    return char.isalnum() or char in "'’-"


def whole_words(headline: str, text: str, start: str, stop: str) -> str:
    """`headline` with any word its fragments cut in two dropped.

    PostgreSQL's parser splits "hasn't" into "hasn" and "t", so a fragment may end inside a word
    ("cold pressed it hasn"); each fragment is found in `text` and trimmed back to whole words."""
    fragments = []
    for fragment in headline.split(_FRAGMENT_DELIMITER):
        plain = fragment.replace(start, "").replace(stop, "")
        at = text.find(plain)
        if at >= 0 and plain:
            end = at + len(plain)
            if (
                end < len(text)
                and _inside_word(text[end])
                and _inside_word(plain[-1])
                and " " in fragment.strip()
            ):
                fragment = fragment.rstrip()
                fragment = fragment[: fragment.rfind(" ")].rstrip()
            if at > 0 and _inside_word(text[at - 1]) and _inside_word(plain[0]) and " " in fragment.strip():
                fragment = fragment.lstrip()
                fragment = fragment[fragment.find(" ") + 1 :].lstrip()
        fragments.append(fragment)
    return _FRAGMENT_DELIMITER.join(fragments)
