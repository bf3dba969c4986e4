"""Measure retrieval quality on an eval library: load it, segment, embed, search every question.

    python bench/eval_dev.py huberman_dev [--window 45 --stride 30] [--no-title] [--json]

Loads `../shared/eval/<set>/library` into its own database on the warehouse's server (or
`--database-url`), through the same store functions the pipeline uses, and scores
`questions.jsonl` in all three modes. Vectors are cached on disk by model and exact input text,
so re-running with other ranking settings costs only the searches.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import time
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chaffee_assets.ingest.cues import Cue  # noqa: E402
from chaffee_assets.retrieval import store  # noqa: E402
from chaffee_assets.retrieval.embedder import Embedder  # noqa: E402
from chaffee_assets.retrieval.evaluation import first_relevant_rank, load_questions, score  # noqa: E402
from chaffee_assets.retrieval.segmenter import SegmentParams, segment_cues  # noqa: E402
from chaffee_assets.search import MODES, SearchOptions, search  # noqa: E402
from chaffee_assets.warehouse import connect  # noqa: E402
from chaffee_assets.warehouse.migrate import upgrade  # noqa: E402

EVAL = ROOT.parent / "shared" / "eval"
CACHE = ROOT / ".chaffee" / "embedding_cache"
_TIME = re.compile(r"(\d+):(\d\d):(\d\d)[.,](\d{3})")


def _seconds(stamp: str) -> float:
    h, m, s, ms = _TIME.match(stamp.strip()).groups()
    return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000


def _minimal_cues(path: Path) -> list[Cue]:
    """Fallback reader for the eval libraries' plain .srt/.vtt when the caption parser is absent."""
    cues: list[Cue] = []
    for block in re.split(r"\n\s*\n", path.read_text(encoding="utf-8")):
        lines = [line for line in block.strip().splitlines() if line.strip()]
        for i, line in enumerate(lines):
            if "-->" in line:
                start, end = line.split("-->")
                text = " ".join(lines[i + 1 :]).strip()
                if text:
                    cues.append(Cue(_seconds(start), _seconds(end.split()[0]), text))
                break
    return cues


def read_cues(path: Path) -> list[Cue]:
    try:
        from chaffee_assets.ingest.captions import parse_caption_file
    except ImportError:
        return _minimal_cues(path)
    return parse_caption_file(path)


def database_url(name: str, explicit: str | None) -> str:
    if explicit:
        return explicit
    from chaffee_assets.warehouse.server import embedded_server_uri

    return embedded_server_uri(name)


def load_library(conn: psycopg.Connection, library: Path) -> dict[str, list[Cue]]:
    """Insert videos and version-1 transcripts for every info.json in the library (once)."""
    cues_by_video: dict[str, list[Cue]] = {}
    for info_path in sorted(library.glob("*.info.json")):
        info = json.loads(info_path.read_text(encoding="utf-8"))
        vid = info["id"]
        captions = sorted(library.glob(f"{glob_escape(vid)}.en.*"))
        if not captions:
            continue
        cues = read_cues(captions[0])
        cues_by_video[vid] = cues
        published = datetime.strptime(info["upload_date"], "%Y%m%d").replace(tzinfo=UTC)
        with conn.transaction():
            conn.execute(
                "INSERT INTO videos (video_id, source, title, published_at, url, description) "
                "VALUES (%s, 'library', %s, %s, %s, %s) ON CONFLICT (video_id) DO NOTHING",
                (
                    vid,
                    info["title"],
                    published,
                    info.get("webpage_url") or f"https://youtu.be/{vid}",
                    info.get("description"),
                ),
            )
            conn.execute(
                "INSERT INTO transcripts (video_id, version, source, language, cues) "
                "VALUES (%s, 1, 'library_file', 'en', %s::jsonb) ON CONFLICT (video_id, version) DO NOTHING",
                (vid, json.dumps([c.as_dict() for c in cues])),
            )
    return cues_by_video


def glob_escape(text: str) -> str:
    return re.sub(r"([\[\]*?])", r"[\1]", text)


class CachedEmbedder(Embedder):
    """Memoises vectors on disk by model and exact text, and queries in memory."""

    def encode(self, texts) -> np.ndarray:
        out: list[np.ndarray | None] = []
        todo: list[int] = []
        paths = []
        for i, text in enumerate(texts):
            key = hashlib.sha1(f"{self.model_name}\0{text}".encode()).hexdigest()
            path = CACHE / self.model_name / key[:2] / f"{key}.npy"
            paths.append(path)
            if path.exists():
                out.append(np.load(path))
            else:
                out.append(None)
                todo.append(i)
        if todo:
            fresh = super().encode([texts[i] for i in todo])
            for i, vec in zip(todo, fresh, strict=True):
                paths[i].parent.mkdir(parents=True, exist_ok=True)
                np.save(paths[i], vec)
                out[i] = vec
        return np.stack(out) if out else np.zeros((0, self.dimension), dtype=np.float32)


def build(
    url: str, set_name: str, params: SegmentParams, embedder: Embedder, title_prefix: bool
) -> dict[str, float]:
    """Load, segment and embed the library; returns timings and counts."""
    library = EVAL / set_name / "library"
    figures: dict[str, float] = {}
    with connect(url) as conn:
        t0 = time.perf_counter()
        cues_by_video = load_library(conn, library)
        transcript_ids = dict(conn.execute("SELECT video_id, transcript_id FROM transcripts").fetchall())
        store.register_model(conn, embedder.model_name, embedder.dimension)
        n_segments = 0
        for vid, cues in cues_by_video.items():
            segs = segment_cues(cues, params, embedder.count_tokens)
            n_segments += len(store.replace_segments(conn, vid, transcript_ids[vid], segs))
        figures["segments"] = n_segments
        figures["segment_s"] = round(time.perf_counter() - t0, 1)
        t0 = time.perf_counter()
        missing = store.segments_missing_embeddings(conn, embedder.model_name)
        texts = [
            document_text(
                title, text, count_tokens=embedder.count_tokens, reserve_tokens=params.reserve_tokens
            )
            if title_prefix
            else text
            for _, title, text in missing
        ]
        vectors = embedder.encode(texts, show_progress=False)
        store.write_embeddings(conn, embedder.model_name, zip([m[0] for m in missing], vectors, strict=True))
        figures["embed_s"] = round(time.perf_counter() - t0, 1)
        conn.commit()
    return figures


def run_questions(
    url: str, set_name: str, embedder: Embedder, options: SearchOptions, modes=MODES
) -> dict[str, dict[str, float]]:
    questions = load_questions(EVAL / set_name / "questions.jsonl")
    # One vector per question, reused by every mode.
    qvecs = embedder.encode([q.question for q in questions])
    results: dict[str, dict[str, float]] = {}

    class _Fixed:
        model_name = embedder.model_name

        def __init__(self, vec):
            self.vec = vec

        def encode(self, texts):
            return [self.vec]

    with connect(url, autocommit=True) as conn:
        for mode in modes:
            ranks = []
            t0 = time.perf_counter()
            for q, vec in zip(questions, qvecs, strict=True):
                hits = search(
                    q.question,
                    10,
                    mode,
                    model=embedder.model_name,
                    options=options,
                    conn=conn,
                    embedder=_Fixed(vec),
                )
                ranks.append(first_relevant_rank(hits, q))
            results[mode] = score(ranks) | {
                "ms_per_query": round(1000 * (time.perf_counter() - t0) / len(ranks), 1)
            }
    return results


def fresh_database(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
    upgrade(url)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("set", choices=[p.name for p in EVAL.iterdir() if p.is_dir()], help="eval set")
    parser.add_argument("--database-url", help="server to use (default: the embedded one)")
    parser.add_argument("--window", type=float, default=SegmentParams().window_s, help="segment window, s")
    parser.add_argument("--stride", type=float, default=SegmentParams().stride_s, help="segment stride, s")
    parser.add_argument("--no-title", action="store_true", help="embed segment text without the title")
    parser.add_argument("--model", default="all-MiniLM-L6-v2", help="embedding model name or path")
    parser.add_argument("--backend", default="torch", help="sentence-transformers backend")
    parser.add_argument("--max-per-video", type=int, default=SearchOptions().max_per_video, help="0 = no cap")
    parser.add_argument("--candidates", type=int, default=SearchOptions().candidates)
    parser.add_argument("--rrf-k", type=int, default=SearchOptions().rrf_k)
    parser.add_argument("--vector-weight", type=float, default=SearchOptions().vector_weight)
    parser.add_argument("--text-weight", type=float, default=SearchOptions().text_weight)
    parser.add_argument("--no-collapse", action="store_true", help="keep overlapping hits of a video")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated modes to score")
    parser.add_argument("--keep", action="store_true", help="reuse the database as built last time")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)

    params = replace(SegmentParams(), window_s=args.window, stride_s=args.stride)
    options = replace(
        SearchOptions(),
        max_per_video=args.max_per_video or None,
        candidates=args.candidates,
        rrf_k=args.rrf_k,
        vector_weight=args.vector_weight,
        text_weight=args.text_weight,
        collapse_overlaps=not args.no_collapse,
    )
    url = database_url(f"eval_{args.set}", args.database_url)
    embedder = CachedEmbedder(args.model, backend=args.backend)
    figures: dict[str, float] = {}
    if not args.keep:
        fresh_database(url)
        figures = build(url, args.set, params, embedder, not args.no_title)
    results = run_questions(url, args.set, embedder, options, args.modes.split(","))
    report = {
        "set": args.set,
        "segments": asdict(params),
        "search": asdict(options),
        "title_prefix": not args.no_title,
        "build": figures,
    } | results
    if args.json:
        print(json.dumps(report))
    else:
        print(json.dumps({k: v for k, v in report.items() if k not in MODES}))
        for mode in args.modes.split(","):
            print(f"{mode:7s} " + "  ".join(f"{k}={v}" for k, v in results[mode].items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
