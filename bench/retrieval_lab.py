"""Retrieval lab: score ranking variants on every evaluation condition in memory, in seconds.

    python bench/retrieval_lab.py build            # segments, vectors and lexemes of every condition
    python bench/retrieval_lab.py run [--only dev]  # every variant × every condition, as a table
    python bench/retrieval_lab.py backend-vectors --backend openvino     # then run its parity variants

A condition is a library and its questions (`../shared/eval`), possibly with its titles replaced:

- `dev`: huberman_dev as it is (211 videos, informative titles).
- `chapters`: huberman_chapters as it is (11 long episodes; questions compete within an episode).
- `dev_generic`: huberman_dev with every title, description and tag list replaced by a generic live
  Q&A one ("Live Q&A #17"): titles that say nothing about any one answer.
- `chapters_generic_in_dev`: huberman_chapters' episodes under generic titles among the 211 dev
  videos under their real, informative titles, scored on the chapters questions: the case where
  context actively misleads (the answer's video says nothing, other videos' titles match the topic).

Segments are cut with the product's segmenter and tokenizer, vectors come from the product's
embedder (cached on disk by model and exact text), lexemes from PostgreSQL's own `to_tsvector`, so
a variant that wins here can be written in SQL and confirmed with `chaffee eval`. The lab's rankings
are exact (no HNSW, no walk cap); the product's page shape (overlap collapsing, ≤ 5 per video) is
applied the same way.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import pickle
import sys
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_support import EVAL, cached_vectors  # noqa: E402

LAB = ROOT / ".chaffee" / "lab"

# --------------------------------------------------------------------------- building


@dataclass
class Corpus:
    """Every segment of both libraries, with what each ranking needs."""

    video: list[str] = field(default_factory=list)  # per segment
    library: list[str] = field(default_factory=list)
    start: np.ndarray | None = None
    end: np.ndarray | None = None
    text: list[str] = field(default_factory=list)
    videos: dict[str, dict] = field(default_factory=dict)  # (library, id) key -> metadata
    vectors: dict[str, np.ndarray] = field(default_factory=dict)  # variant -> (n, d)
    lexemes: dict[str, list[dict[str, int]]] = field(default_factory=dict)  # config -> per segment
    words: np.ndarray | None = None  # word count per segment
    questions: dict[str, list[dict]] = field(default_factory=dict)
    question_vectors: dict[str, np.ndarray] = field(default_factory=dict)
    question_lexemes: dict[str, dict[str, list[dict[str, int]]]] = field(default_factory=dict)
    extra: dict[str, dict] = field(default_factory=dict)  # finer units (chunks), by key


def cached_encode(embedder, texts: list[str]) -> np.ndarray:
    return cached_vectors(embedder.model_name, texts, embedder.encode)


def pg_lexemes(conn, texts: list[str], config: str) -> list[dict[str, int]]:
    """Per text: lexeme -> term frequency (positions), exactly as PostgreSQL's to_tsvector counts."""
    result: list[dict[str, int]] = [dict() for _ in texts]
    for offset in range(0, len(texts), 2000):
        chunk = texts[offset : offset + 2000]
        rows = conn.execute(
            f"""
            SELECT x.i, l.lexeme, coalesce(array_length(l.positions, 1), 1)
            FROM unnest(%s::text[]) WITH ORDINALITY AS x(t, i),
                 unnest(to_tsvector('{config}', x.t)) AS l
            """,
            (chunk,),
        ).fetchall()
        for i, lexeme, tf in rows:
            result[offset + i - 1][lexeme] = tf
    return result


def corpus_path(model_name: str, stride: float = 30.0) -> Path:
    suffix = "" if stride == 30.0 else f"_stride{int(stride)}"
    return LAB / f"corpus_{model_name}{suffix}.pkl"


def build(model: str, stride: float = 30.0) -> None:
    from chaffee_assets.ingest.captions import parse_caption_file
    from chaffee_assets.retrieval.embedder import Embedder
    from chaffee_assets.retrieval.evaluation import load_questions
    from chaffee_assets.retrieval.segmenter import SegmentParams, segment_cues
    from chaffee_assets.warehouse import connect

    embedder = Embedder(model, backend="torch")  # the fp32 reference every backend is compared with
    params = SegmentParams(max_tokens=embedder.max_seq_length, stride_s=stride)
    corpus = Corpus()
    starts, ends = [], []
    for lib in ("huberman_dev", "huberman_chapters"):
        library = EVAL / lib / "library"
        for info_path in sorted(library.glob("*.info.json")):
            info = json.loads(info_path.read_text(encoding="utf-8"))
            vid = info["id"]
            caption = next(p for p in library.iterdir() if p.name.startswith(f"{vid}.en."))
            corpus.videos[f"{lib}/{vid}"] = {
                "id": vid,
                "title": info["title"],
                "description": info.get("description") or "",
                "tags": info.get("tags") or [],
            }
            for seg in segment_cues(parse_caption_file(caption), params, embedder.count_tokens):
                corpus.video.append(vid)
                corpus.library.append(lib)
                starts.append(seg.start_s)
                ends.append(seg.end_s)
                corpus.text.append(seg.text)
        corpus.questions[lib] = [
            dataclasses.asdict(q) for q in load_questions(EVAL / lib / "questions.jsonl")
        ]
    corpus.start, corpus.end = np.array(starts), np.array(ends)
    print(f"{len(corpus.text)} segments", flush=True)
    corpus.vectors["plain"] = cached_encode(embedder, corpus.text)
    with connect() as conn:
        for config in ("english", "simple"):
            corpus.lexemes[config] = pg_lexemes(conn, corpus.text, config)
            corpus.question_lexemes[config] = {
                lib: pg_lexemes(conn, [q["question"] for q in qs], config)
                for lib, qs in corpus.questions.items()
            }
    corpus.words = np.array([len(t.split()) for t in corpus.text])
    for lib, qs in corpus.questions.items():
        corpus.question_vectors[lib] = cached_encode(embedder, [q["question"] for q in qs])
    LAB.mkdir(parents=True, exist_ok=True)
    with open(corpus_path(embedder.model_name, stride), "wb") as fh:
        pickle.dump(corpus, fh)


def document_text(title: str, text: str, *, count_tokens, reserve_tokens: int = 32) -> str:
    """The old product's embedded document: the video title cut to `reserve_tokens` word pieces,
    a colon, then the segment's words."""
    words = title.split()
    while words and count_tokens(" ".join(words)) + 1 > reserve_tokens:
        words.pop()
    return f"{' '.join(words)}: {text}" if words else text


def add_title_vectors(model: str) -> None:
    """Vectors of `title: text` documents (the old product's input) under each condition's titles."""
    from chaffee_assets.retrieval.embedder import Embedder

    embedder = Embedder(model)
    path = LAB / f"corpus_{embedder.model_name}.pkl"
    corpus: Corpus = pickle.loads(path.read_bytes())
    for cond in conditions(corpus):
        variant = f"title:{cond.name}"
        if variant in corpus.vectors:
            continue
        docs = [
            document_text(cond.title[corpus.video[i]], corpus.text[i], count_tokens=embedder.count_tokens)
            for i in cond.members
        ]
        corpus.vectors[variant] = cached_encode(embedder, docs)
        path.write_bytes(pickle.dumps(corpus))


# --------------------------------------------------------------------------- conditions


@dataclass
class Condition:
    name: str
    questions_from: str
    members: np.ndarray  # segment indexes in the condition's library
    title: dict[str, str]  # video id -> title shown
    description: dict[str, str]
    tags: dict[str, list[str]]


def conditions(corpus: Corpus) -> list[Condition]:
    """The conditions of bench/eval_conditions.py, over the lab's segments."""
    import eval_conditions

    lib = np.array(corpus.library)
    out = []
    for spec in eval_conditions.CONDITIONS:
        members: list[int] = []
        placed: set[str] = set()
        for library, _how in spec.parts:
            ids = {corpus.video[i] for i in np.flatnonzero(lib == library)} - placed
            members.extend(i for i in np.flatnonzero(lib == library) if corpus.video[i] in ids)
            placed |= ids
        shown = eval_conditions.condition_metadata(spec)
        out.append(
            Condition(
                spec.name,
                spec.questions.parent.name,
                np.array(members),
                {v: m["title"] for v, m in shown.items()},
                {v: m["description"] for v, m in shown.items()},
                {v: m["tags"] for v, m in shown.items()},
            )
        )
    return out


# --------------------------------------------------------------------------- rankings


class Index:
    """One condition's segments with BM25 statistics and vectors, ready for questions."""

    def __init__(self, corpus: Corpus, cond: Condition, config: str, length: str) -> None:
        self.corpus, self.cond = corpus, cond
        self.members = cond.members
        docs = [corpus.lexemes[config][i] for i in self.members]
        vocab: dict[str, int] = {}
        rows, cols, vals = [], [], []
        for r, doc in enumerate(docs):
            for lexeme, tf in doc.items():
                rows.append(r)
                cols.append(vocab.setdefault(lexeme, len(vocab)))
                vals.append(tf)
        self.vocab = vocab
        self.tf = sp.csc_matrix((vals, (rows, cols)), shape=(len(docs), len(vocab)), dtype=np.float64)
        self.df = np.asarray((self.tf > 0).sum(axis=0)).ravel()
        n = len(docs)
        self.n = n
        self.idf = np.log(1 + (n - self.df + 0.5) / (self.df + 0.5))
        if length == "distinct":
            self.length = np.array([len(d) for d in docs], dtype=np.float64)
        elif length == "positions":
            self.length = np.array([sum(d.values()) for d in docs], dtype=np.float64)
        else:  # words
            self.length = corpus.words[self.members].astype(np.float64)
        self.avglen = max(self.length.mean(), 1.0)
        self.video = np.array([corpus.video[i] for i in self.members])
        self.start = corpus.start[self.members]
        self.end = corpus.end[self.members]
        same_prev = np.r_[False, self.video[1:] == self.video[:-1]]
        same_next = np.r_[self.video[:-1] == self.video[1:], False]
        self.prev = np.where(same_prev, np.arange(self.n) - 1, -1)
        self.next = np.where(same_next, np.arange(self.n) + 1, -1)

    def smooth(self, scores: np.ndarray, beta: float, how: str = "max") -> np.ndarray:
        """Each segment's score plus `beta` times its neighbours' (max or mean of the two)."""
        if not beta:
            return scores
        padded = np.r_[scores, 0.0]
        p, n = padded[self.prev], padded[self.next]
        neighbour = np.maximum(p, n) if how == "max" else (p + n) / 2
        return scores + beta * neighbour

    def bm25(self, query: dict[str, int], k1: float = 1.2, b: float = 0.75) -> np.ndarray:
        scores = np.zeros(self.n)
        norm = k1 * (1 - b + b * self.length / self.avglen)
        for lexeme in query:
            j = self.vocab.get(lexeme)
            if j is None:
                continue
            col = self.tf.getcol(j)
            rows, tf = col.indices, col.data
            scores[rows] += self.idf[j] * tf * (k1 + 1) / (tf + norm[rows])
        return scores


def top(scores: np.ndarray, depth: int, positive_only: bool = False) -> np.ndarray:
    if positive_only:
        nz = np.flatnonzero(scores > 0)
        order = nz[np.argsort(-scores[nz], kind="stable")]
        return order[:depth]
    idx = np.argpartition(-scores, min(depth, len(scores) - 1))[:depth]
    return idx[np.argsort(-scores[idx], kind="stable")]


def rrf(lists: list[tuple[np.ndarray, float]], k: float, n: int) -> np.ndarray:
    fused = np.zeros(n)
    for ranked, weight in lists:
        fused[ranked] += weight / (k + np.arange(1, len(ranked) + 1))
    return fused


def convex(vscore, vtop, tscore, ttop, alpha: float, n: int) -> np.ndarray:
    """alpha·(min-max normalised cosine) + (1-alpha)·(BM25 / its best), over each list's top."""
    fused = np.zeros(n)
    v = vscore[vtop]
    lo, hi = v.min(), v.max()
    fused[vtop] += alpha * (v - lo) / (hi - lo if hi > lo else 1)
    if len(ttop):
        t = tscore[ttop]
        fused[ttop] += (1 - alpha) * t / t.max()
    return fused


def page(index: Index, scores: np.ndarray, candidates: np.ndarray, k: int = 10, per_video: int = 5):
    """The product's page shape: overlapping hits of a video collapse to the best, ≤ per_video."""
    order = candidates[np.argsort(-scores[candidates], kind="stable")]
    kept: list[int] = []
    per: dict[str, int] = defaultdict(int)
    for i in order:
        v = index.video[i]
        if any(
            index.video[j] == v and index.start[j] < index.end[i] and index.end[j] > index.start[i]
            for j in kept
        ):
            continue
        if per[v] >= per_video:
            continue
        kept.append(i)
        per[v] += 1
        if len(kept) == k:
            break
    return kept


def first_rank(index: Index, hits: list[int], q: dict) -> int | None:
    for rank, i in enumerate(hits, start=1):
        if index.video[i] == q["video_id"] and index.start[i] <= q["end_s"] and index.end[i] >= q["start_s"]:
            return rank
    return None


def metrics(ranks: list[int | None]) -> tuple[float, float]:
    n = len(ranks)
    r5 = sum(1 for r in ranks if r is not None and r <= 5) / n
    mrr = sum(1 / r for r in ranks if r is not None and r <= 10) / n
    return r5, mrr


def add_chunks(model: str, window_s: float, max_tokens: int) -> None:
    """Short non-overlapping chunks of every video, embedded: a finer vector unit than segments."""
    from chaffee_assets.ingest.captions import parse_caption_file
    from chaffee_assets.retrieval.embedder import Embedder
    from chaffee_assets.retrieval.segmenter import SegmentParams, segment_cues

    embedder = Embedder(model)
    path = LAB / f"corpus_{embedder.model_name}.pkl"
    key = f"chunks_{int(window_s)}_{max_tokens}"
    params = SegmentParams(window_s=window_s, stride_s=window_s, max_tokens=max_tokens, reserve_tokens=0)
    video, library, start, end, text = [], [], [], [], []
    for lib in ("huberman_dev", "huberman_chapters"):
        lib_dir = EVAL / lib / "library"
        for info_path in sorted(lib_dir.glob("*.info.json")):
            vid = info_path.name[: -len(".info.json")]
            caption = next(p for p in lib_dir.iterdir() if p.name.startswith(f"{vid}.en."))
            for seg in segment_cues(parse_caption_file(caption), params, embedder.count_tokens):
                video.append(vid)
                library.append(lib)
                start.append(seg.start_s)
                end.append(seg.end_s)
                text.append(seg.text)
    print(f"{key}: {len(text)} chunks", flush=True)
    vectors = cached_encode(embedder, text)
    chunks = {
        "video": video,
        "library": library,
        "start": np.array(start),
        "end": np.array(end),
        "vectors": vectors,
        "text": text,
    }
    (path.parent / f"{key}_{embedder.model_name}.pkl").write_bytes(pickle.dumps(chunks))


def add_reference(model: str) -> None:
    """The plain reference of ../shared/eval/README.md: 60 s windows every 45 s, nothing else."""
    import re

    from chaffee_assets.ingest.captions import parse_caption_file
    from chaffee_assets.retrieval.embedder import Embedder

    embedder = Embedder(model, backend="torch")
    video, library, start, end, text = [], [], [], [], []
    for lib in ("huberman_dev", "huberman_chapters"):
        lib_dir = EVAL / lib / "library"
        for info_path in sorted(lib_dir.glob("*.info.json")):
            vid = info_path.name[: -len(".info.json")]
            caption = next(p for p in lib_dir.iterdir() if p.name.startswith(f"{vid}.en."))
            cues = parse_caption_file(caption)
            if not cues:
                continue
            t = 0.0
            last = max(c.end for c in cues)
            while t < last:
                inside = [c for c in cues if t <= c.start < t + 60]
                if inside:
                    video.append(vid)
                    library.append(lib)
                    start.append(t)
                    end.append(t + 60)
                    text.append(" ".join(c.text for c in inside))
                t += 45
    print(f"reference: {len(text)} windows", flush=True)
    vectors = cached_encode(embedder, text)
    tokens = [re.findall(r"\w+", t.lower()) for t in text]
    ref = {
        "video": video,
        "library": library,
        "start": np.array(start),
        "end": np.array(end),
        "vectors": vectors,
        "tokens": tokens,
    }
    (LAB / f"reference_{embedder.model_name}.pkl").write_bytes(pickle.dumps(ref))


def run_reference(corpus: Corpus, only: list[str] | None) -> None:
    """Score the plain reference on every condition (titles do not enter it)."""
    import re
    from collections import Counter

    ref = pickle.loads((LAB / "reference_all-MiniLM-L6-v2.pkl").read_bytes())
    for cond in conditions(corpus):
        if only and cond.name not in only:
            continue
        keep_videos = {corpus.video[i]: corpus.library[i] for i in cond.members}
        members = [
            j
            for j, (v, lb) in enumerate(zip(ref["video"], ref["library"], strict=True))
            if keep_videos.get(v) == lb
        ]
        vid = np.array([ref["video"][j] for j in members])
        st, en = ref["start"][members], ref["end"][members]
        vecs = ref["vectors"][members]
        docs = [Counter(ref["tokens"][j]) for j in members]
        n = len(docs)
        df = Counter(t for d in docs for t in d)
        lengths = np.array([sum(d.values()) for d in docs], dtype=float)
        avg = lengths.mean()
        qs = corpus.questions[cond.questions_from]
        qvecs = corpus.question_vectors[cond.questions_from]
        ranks = {"hybrid": [], "vector": [], "text": []}
        for qi, q in enumerate(qs):
            terms = re.findall(r"\w+", q["question"].lower())
            bm = np.zeros(n)
            for term in terms:
                if term not in df:
                    continue
                idf = math.log(1 + (n - df[term] + 0.5) / (df[term] + 0.5))
                tf = np.array([d.get(term, 0) for d in docs], dtype=float)
                bm += idf * tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * lengths / avg))
            vs = vecs @ qvecs[qi]
            vtop = np.argsort(-vs)[:100]
            ttop = np.argsort(-bm)[:100]
            fused = np.zeros(n)
            fused[vtop] += 1 / (60 + np.arange(1, 101))
            fused[ttop] += 1 / (60 + np.arange(1, 101))
            for mode, order in (
                ("hybrid", np.argsort(-fused)[:10]),
                ("vector", vtop[:10]),
                ("text", ttop[:10]),
            ):
                rank = None
                for r, i in enumerate(order, start=1):
                    if vid[i] == q["video_id"] and st[i] <= q["end_s"] and en[i] >= q["start_s"]:
                        rank = r
                        break
                ranks[mode].append(rank)
        cells = {m: metrics(r) for m, r in ranks.items()}
        print(f"reference {cond.name}: " + "  ".join(f"{m} {v[0]:.3f}/{v[1]:.3f}" for m, v in cells.items()))


def chunk_window_map(corpus: Corpus, index: Index, key: str) -> tuple[np.ndarray, sp.csr_matrix]:
    """(chunk vectors of the condition, windows × chunks overlap matrix)."""
    if key not in corpus.extra:
        corpus.extra[key] = pickle.loads((LAB / f"{key}_all-MiniLM-L6-v2.pkl").read_bytes())
    ch = corpus.extra[key]
    lib_of = {corpus.video[i]: corpus.library[i] for i in index.members}
    keep = [
        j for j, (v, lb) in enumerate(zip(ch["video"], ch["library"], strict=True)) if lib_of.get(v) == lb
    ]
    by_video: dict[str, list[int]] = defaultdict(list)
    for local, j in enumerate(keep):
        by_video[ch["video"][j]].append(local)
    rows, cols = [], []
    for i in range(index.n):
        for local in by_video[index.video[i]]:
            j = keep[local]
            if ch["start"][j] < index.end[i] and ch["end"][j] > index.start[i]:
                rows.append(i)
                cols.append(local)
    m = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(index.n, len(keep)))
    return ch["vectors"][keep], m


# --------------------------------------------------------------------------- variants

Variant = Callable[[Index, int, dict], np.ndarray]  # (index, question number, knobs) -> hits


@functools.cache
def backend_vectors(backend: str) -> dict:
    """Vectors of every corpus segment and question by another backend, `{backend}_vectors.pkl`
    (written by `backend-vectors`), in the corpus's order."""
    return pickle.loads((LAB / f"{backend}_vectors.pkl").read_bytes())


def evaluate(corpus: Corpus, cond: Condition, knobs: dict) -> dict[str, tuple[float, float]]:
    index = Index(corpus, cond, knobs.get("config", "english"), knobs.get("length", "distinct"))
    lib = cond.questions_from
    qs = corpus.questions[lib]
    qvecs = corpus.question_vectors[lib]
    if knobs.get("vectors") == "title":
        vectors = corpus.vectors[f"title:{cond.name}"]
    elif knobs.get("backend"):
        # Another embedding backend's vectors of the same segments (and, unless the product embeds
        # questions with fp32 ONNX under that backend, of the same questions).
        other = backend_vectors(knobs["backend"])
        vectors = other["plain"][index.members]
        if knobs.get("backend_questions", True):
            qvecs = other["questions"][lib]
    else:
        vectors = corpus.vectors["plain"][index.members]
    qlex = corpus.question_lexemes[knobs.get("config", "english")][lib]
    depth = knobs.get("depth", 100)
    out: dict[str, list] = {"hybrid": [], "vector": [], "text": []}
    title_scores = video_context_scores(corpus, cond, index, knobs)
    chunk_key = knobs.get("chunks")
    if chunk_key:
        chunk_vectors, overlap = chunk_window_map(corpus, index, chunk_key)
        if knobs.get("chunk_mode") == "mean":
            # A window's vector composed from its chunks' vectors instead of embedded itself.
            composed = overlap @ chunk_vectors
            vectors = composed / np.linalg.norm(composed, axis=1, keepdims=True)
            chunk_key = None
    for qi, q in enumerate(qs):
        vscore = vectors @ qvecs[qi]
        if chunk_key:
            sims = chunk_vectors @ qvecs[qi]
            # max over the chunks each window overlaps
            best = np.full(index.n, -1.0)
            coo = overlap.tocoo()
            np.maximum.at(best, coo.row, sims[coo.col])
            how = knobs.get("chunk_mode", "max")
            vscore = best if how == "max" else vscore + knobs.get("chunk_w", 1.0) * best
        vscore = index.smooth(vscore, knobs.get("smooth_v", 0.0), knobs.get("smooth", "max"))
        vtop = top(vscore, depth)
        tscore = index.bm25(qlex[qi], knobs.get("k1", 1.2), knobs.get("b", 0.75))
        tscore = index.smooth(tscore, knobs.get("smooth_t", 0.0), knobs.get("smooth", "max"))
        ttop = top(tscore, depth, positive_only=True)
        cands = np.union1d(vtop, ttop)
        if knobs.get("fusion") == "convex":
            fused = convex(vscore, vtop, tscore, ttop, knobs.get("alpha", 0.5), index.n)
        elif knobs.get("fusion") == "union_rrf":
            # Both scores for every candidate of either list, ranked within the union, then RRF.
            vr = cands[np.argsort(-vscore[cands], kind="stable")]
            tr = cands[np.argsort(-tscore[cands], kind="stable")]
            fused = rrf(
                [(vr, knobs.get("wv", 1.0)), (tr, knobs.get("wt", 1.0))], knobs.get("rrf_k", 30), index.n
            )
        elif knobs.get("fusion") == "union_convex":
            v, t = vscore[cands], tscore[cands]
            if knobs.get("norm") == "tm2c2":
                vn = (v + 1) / (v.max() + 1)  # theoretical minimum of a cosine is -1
            elif knobs.get("norm") == "zscore":
                # Distribution-based: each score in standard deviations above its candidates' mean.
                vn = (v - v.mean()) / max(v.std(), 1e-9)
                t = (t - t.mean()) / max(t.std(), 1e-9)
            else:
                vn = (v - v.min()) / max(v.max() - v.min(), 1e-9)
            tn = t if knobs.get("norm") == "zscore" else t / max(t.max(), 1e-9)
            fused = np.full(index.n, -np.inf)
            fused[cands] = knobs.get("alpha", 0.5) * vn + (1 - knobs.get("alpha", 0.5)) * tn
        else:
            lists = [(vtop, knobs.get("wv", 1.0)), (ttop, knobs.get("wt", 1.0))]
            boost = None
            if title_scores is not None:
                ctx = title_scores(qi)
                if ctx is not None and isinstance(ctx[0], str):
                    boost = ctx[1]
                elif ctx is not None:
                    lists.append(ctx)
            fused = rrf(lists, knobs.get("rrf_k", 30), index.n)
            if boost is not None:
                # Only segments a ranking found get the prior: it reorders, never adds candidates.
                fused[cands] += boost[cands]
        out["hybrid"].append(first_rank(index, page(index, fused, cands), q))
        out["vector"].append(first_rank(index, page(index, vscore, vtop), q))
        out["text"].append(first_rank(index, page(index, tscore, ttop), q) if len(ttop) else None)
    return {mode: metrics(ranks) for mode, ranks in out.items()}


def video_context_scores(corpus: Corpus, cond: Condition, index: Index, knobs: dict):
    """A ranking of segments by their video's title (and description/tags) match, or None."""
    kind = knobs.get("context")
    if not kind:
        return None
    videos = sorted(set(index.video))
    pos = {v: i for i, v in enumerate(videos)}
    seg_video = np.array([pos[v] for v in index.video])
    config = knobs.get("config", "english")
    from chaffee_assets.warehouse import connect

    fields = []
    for v in videos:
        parts = [cond.title[v]]
        if "desc" in kind:
            parts.append(cond.description[v][:500])
        if "tags" in kind:
            parts.append(" ".join(cond.tags[v]))
        fields.append(" ".join(parts))
    with connect() as conn:
        lex = pg_lexemes(conn, fields, config)
    n = len(videos)
    vocab: dict[str, int] = {}
    rows, cols, vals = [], [], []
    for r, doc in enumerate(lex):
        for lexeme, tf in doc.items():
            rows.append(r)
            cols.append(vocab.setdefault(lexeme, len(vocab)))
            vals.append(tf)
    tf = sp.csc_matrix((vals, (rows, cols)), shape=(n, len(vocab)), dtype=np.float64)
    df = np.asarray((tf > 0).sum(axis=0)).ravel()
    idf = np.log(1 + (n - df + 0.5) / (df + 0.5))
    length = np.array([sum(d.values()) for d in lex], dtype=np.float64)
    avg = max(length.mean(), 1)
    qlex = corpus.question_lexemes[config][cond.questions_from]
    weight = knobs.get("wc", 0.5)

    def for_question(qi: int):
        scores = np.zeros(n)
        norm = 1.2 * (0.25 + 0.75 * length / avg)
        for lexeme in qlex[qi]:
            j = vocab.get(lexeme)
            if j is None:
                continue
            col = tf.getcol(j)
            scores[col.indices] += idf[j] * col.data * 2.2 / (col.data + norm[col.indices])
        if not (scores > 0).any():
            return None
        if knobs.get("context_level") == "video":
            # A prior per video: the best-titled videos' segments each get w / (k + video rank).
            best = top(scores, knobs.get("context_videos", 10), positive_only=True)
            boost = np.zeros(n)
            boost[best] = weight / (knobs.get("rrf_k", 30) + np.arange(1, len(best) + 1))
            return ("boost", boost[seg_video])
        seg_scores = scores[seg_video]
        ranked = top(seg_scores, knobs.get("depth", 100), positive_only=True)
        return ranked, weight

    return for_question


def run(corpus: Corpus, variants: dict[str, dict], only: list[str] | None) -> None:
    conds = [c for c in conditions(corpus) if not only or c.name in only]
    header = "variant".ljust(34) + "".join(f"{c.name:>40s}" for c in conds)
    print(header)
    print(" " * 34 + "".join(f"{'hybrid R5/MRR  vector  text':>40s}" for _ in conds))
    for name, knobs in variants.items():
        cells = []
        for cond in conds:
            res = evaluate(corpus, cond, knobs)
            h, v, t = res["hybrid"], res["vector"], res["text"]
            cells.append(f"{h[0]:.3f}/{h[1]:.3f}  {v[0]:.3f}/{v[1]:.3f}  {t[0]:.3f}/{t[1]:.3f}".rjust(40))
        print(name.ljust(34) + "".join(cells), flush=True)


VARIANTS: dict[str, dict] = {
    "words": {"length": "words"},
    "words + title video .5": {"length": "words", "context": "title", "context_level": "video", "wc": 0.5},
    "words + title video .25": {"length": "words", "context": "title", "context_level": "video", "wc": 0.25},
    "words + title video 1": {"length": "words", "context": "title", "context_level": "video", "wc": 1.0},
    "words + title+desc video .5": {
        "length": "words",
        "context": "title+desc",
        "context_level": "video",
        "wc": 0.5,
    },
    "words, union rrf": {"length": "words", "fusion": "union_rrf"},
    "words, union rrf 60": {"length": "words", "fusion": "union_rrf", "rrf_k": 60},
    "words, union convex .5": {"length": "words", "fusion": "union_convex", "alpha": 0.5},
    "words, union convex .6": {"length": "words", "fusion": "union_convex", "alpha": 0.6},
    "words, union convex .4": {"length": "words", "fusion": "union_convex", "alpha": 0.4},
    "words, union zscore .5": {"length": "words", "fusion": "union_convex", "alpha": 0.5, "norm": "zscore"},
    "words, union zscore .6": {"length": "words", "fusion": "union_convex", "alpha": 0.6, "norm": "zscore"},
    "words, union zscore .4": {"length": "words", "fusion": "union_convex", "alpha": 0.4, "norm": "zscore"},
    "words, union convex .45": {"length": "words", "fusion": "union_convex", "alpha": 0.45},
    "words, union convex .55": {"length": "words", "fusion": "union_convex", "alpha": 0.55},
    "words, union convex .6, simple": {
        "config": "simple",
        "length": "words",
        "fusion": "union_convex",
        "alpha": 0.6,
    },
    "words, union convex .6, k1 .9 b .4": {
        "length": "words",
        "fusion": "union_convex",
        "alpha": 0.6,
        "k1": 0.9,
        "b": 0.4,
    },
    "words, union convex .5, k1 .9 b .4": {
        "length": "words",
        "fusion": "union_convex",
        "alpha": 0.5,
        "k1": 0.9,
        "b": 0.4,
    },
    "words, union convex .55, k1 .9 b .4": {
        "length": "words",
        "fusion": "union_convex",
        "alpha": 0.55,
        "k1": 0.9,
        "b": 0.4,
    },
    "words, union zscore .5, k1 .9 b .4": {
        "length": "words",
        "fusion": "union_convex",
        "alpha": 0.5,
        "norm": "zscore",
        "k1": 0.9,
        "b": 0.4,
    },
    "words, union zscore .6, k1 .9 b .4": {
        "length": "words",
        "fusion": "union_convex",
        "alpha": 0.6,
        "norm": "zscore",
        "k1": 0.9,
        "b": 0.4,
    },
    "words, rrf 30, k1 .9 b .4": {"length": "words", "k1": 0.9, "b": 0.4},
    "chosen, fp32 (torch)": {"length": "words", "fusion": "union_convex", "alpha": 0.55, "k1": 0.9, "b": 0.4},
    "chosen, bf16 passages, fp32 questions": {
        "length": "words",
        "fusion": "union_convex",
        "alpha": 0.55,
        "k1": 0.9,
        "b": 0.4,
        "backend": "bf16",
        "backend_questions": False,
    },
    "chosen, openvino passages, fp32 questions": {
        "length": "words",
        "fusion": "union_convex",
        "alpha": 0.55,
        "k1": 0.9,
        "b": 0.4,
        "backend": "openvino",
        "backend_questions": False,
    },
    "chosen, openvino-int8 passages, fp32 questions": {
        "length": "words",
        "fusion": "union_convex",
        "alpha": 0.55,
        "k1": 0.9,
        "b": 0.4,
        "backend": "openvino-int8",
        "backend_questions": False,
    },
    "chosen, onnx-int8": {
        "length": "words",
        "fusion": "union_convex",
        "alpha": 0.55,
        "k1": 0.9,
        "b": 0.4,
        "backend": "int8",
    },
    "words, tm2c2 .7": {"length": "words", "fusion": "union_convex", "alpha": 0.7, "norm": "tm2c2"},
    "words, tm2c2 .8": {"length": "words", "fusion": "union_convex", "alpha": 0.8, "norm": "tm2c2"},
    "words, tm2c2 .9": {"length": "words", "fusion": "union_convex", "alpha": 0.9, "norm": "tm2c2"},
    "words, chunk20 max": {"length": "words", "chunks": "chunks_20_128"},
    "words, chunk20 sum": {"length": "words", "chunks": "chunks_20_128", "chunk_mode": "sum"},
    "words, chunk20 mean": {"length": "words", "chunks": "chunks_20_128", "chunk_mode": "mean"},
    "words, chunk30 mean": {"length": "words", "chunks": "chunks_30_160", "chunk_mode": "mean"},
    "words, smooth v.5 t.5": {"length": "words", "smooth_v": 0.5, "smooth_t": 0.5},
    "words, smooth v.25 t.25": {"length": "words", "smooth_v": 0.25, "smooth_t": 0.25},
    "words, smooth mean v.5 t.5": {"length": "words", "smooth_v": 0.5, "smooth_t": 0.5, "smooth": "mean"},
    "words, convex .5": {"length": "words", "fusion": "convex", "alpha": 0.5},
    "words, convex .3": {"length": "words", "fusion": "convex", "alpha": 0.3},
    "words, rrf 60": {"length": "words", "rrf_k": 60},
    "words, rrf 10": {"length": "words", "rrf_k": 10},
    "old product (title prefix)": {"vectors": "title"},
    "no title prefix": {},
    "no title, simple config": {"config": "simple"},
    "no title, length=words": {"length": "words"},
    "no title, length=positions": {"length": "positions"},
    "no title, rrf 60": {"rrf_k": 60},
    "no title + title field 0.5": {"context": "title", "wc": 0.5},
    "no title + title+desc field 0.5": {"context": "title+desc", "wc": 0.5},
}


def add_backend_vectors(model: str, backend: str) -> None:
    """Every corpus segment and question embedded by another backend, as the product would with
    `CHAFFEE_EMBEDDING_BACKEND=<backend>`; `run` reads them through a variant's `backend` knob."""
    from chaffee_assets.retrieval.embedder import Embedder

    corpus: Corpus = pickle.loads(corpus_path(model, 30.0).read_bytes())
    embedder = Embedder(model, backend=backend)
    vectors = {
        "plain": embedder.encode_passages(corpus.text),
        "questions": {
            lib: embedder.encode_queries([q["question"] for q in qs]) for lib, qs in corpus.questions.items()
        },
    }
    name = {"torch-bf16": "bf16", "onnx-int8": "int8"}.get(backend, backend)
    (LAB / f"{name}_vectors.pkl").write_bytes(pickle.dumps(vectors))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "command", choices=("build", "chunks", "reference", "backend-vectors", "run", "run-reference")
    )
    parser.add_argument("--backend", default="torch-bf16", help="backend-vectors: which backend")
    parser.add_argument("--window", type=float, default=20.0, help="chunk length (chunks)")
    parser.add_argument("--stride", type=float, default=30.0, help="segment stride (build, run)")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("--only", nargs="*", help="conditions to run")
    parser.add_argument("--variants", nargs="*", help="variants to run (names from VARIANTS)")
    args = parser.parse_args(argv)
    if args.command == "build":
        build(args.model, args.stride)
        if args.stride != 30.0:
            return 0
        from chaffee_assets.retrieval.embedder import canonical_model_name

        add_title_vectors(args.model)
        return 0
    if args.command == "chunks":
        add_chunks(args.model, args.window, args.tokens)
        return 0
    if args.command == "reference":
        add_reference(args.model)
        return 0
    if args.command == "backend-vectors":
        add_backend_vectors(args.model, args.backend)
        return 0
    from chaffee_assets.retrieval.embedder import canonical_model_name

    corpus = pickle.loads(corpus_path(canonical_model_name(args.model), args.stride).read_bytes())
    if args.command == "run-reference":
        run_reference(corpus, args.only)
        return 0
    chosen = {k: v for k, v in VARIANTS.items() if not args.variants or k in args.variants}
    run(corpus, chosen, args.only)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
