"""Benchmark: hybrid search latency over a large library, HNSW vs exact scan, and HNSW recall.

    python bench/bench_query.py [--target 200000] [--queries 200] [--quick]

Loads the dev eval library (segments + MiniLM vectors, from bench/eval_dev.py's cache), then
replicates it until the warehouse holds `--target` segments: each copy is a new set of videos with
the same words and vectors perturbed by Gaussian noise (so the HNSW graph is not full of exact
duplicates). Queries are the dev questions, embedded once.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from eval_dev import EVAL, CachedEmbedder, build, database_url, fresh_database  # noqa: E402

from chaffee_assets.retrieval import store  # noqa: E402
from chaffee_assets.retrieval.evaluation import load_questions  # noqa: E402
from chaffee_assets.retrieval.segmenter import SegmentParams  # noqa: E402
from chaffee_assets.search import SearchOptions, search  # noqa: E402
from chaffee_assets.warehouse import connect  # noqa: E402

MODEL = "all-MiniLM-L6-v2"
INDEX = store.hnsw_index_name(MODEL)


def replicate(url: str, target: int, noise: float) -> dict[str, float]:
    figures: dict[str, float] = {}
    with connect(url) as conn:
        base = conn.execute("SELECT count(*) FROM segments").fetchone()[0]
        copies = max(1, -(-target // base)) - 1
        t0 = time.perf_counter()
        conn.execute(f"DROP INDEX {INDEX}")  # rebuilt once below: far faster than per-row inserts
        conn.execute(
            """
            INSERT INTO videos (video_id, source, title, published_at, url)
            SELECT video_id || '~' || r, source, title, published_at, url
            FROM videos, generate_series(1, %s) AS r
            """,
            (copies,),
        )
        conn.execute(
            """
            INSERT INTO transcripts (video_id, version, source, cues)
            SELECT v.video_id || '~' || r, 1, 'library_file', '[]'
            FROM videos v, generate_series(1, %s) AS r WHERE v.video_id NOT LIKE '%%~%%'
            """,
            (copies,),
        )
        conn.execute(
            """
            INSERT INTO segments (video_id, transcript_id, ordinal, start_s, end_s, text)
            SELECT t.video_id, t.transcript_id, s.ordinal, s.start_s, s.end_s, s.text
            FROM transcripts t
            JOIN segments s ON s.video_id = split_part(t.video_id, '~', 1)
            WHERE t.video_id LIKE '%~%'
            """
        )
        conn.commit()
        originals = conn.execute(
            """
            SELECT s.video_id, s.ordinal, e.embedding FROM segments s
            JOIN segment_embeddings e ON e.segment_id = s.segment_id AND e.model = %s
            """,
            (MODEL,),
        ).fetchall()
        by_key = {(v, o): emb.to_numpy() for v, o, emb in originals}
        copies_rows = conn.execute(
            "SELECT segment_id, video_id, ordinal FROM segments WHERE video_id LIKE '%~%'"
        ).fetchall()
        rng = np.random.default_rng(7)

        def rows():
            for segment_id, video_id, ordinal in copies_rows:
                vec = by_key[(video_id.split("~", 1)[0], ordinal)]
                jitter = rng.standard_normal(vec.shape[0]).astype(np.float32)
                vec = vec + noise * jitter / np.linalg.norm(jitter)
                yield segment_id, vec / np.linalg.norm(vec)

        store.write_embeddings(conn, MODEL, rows(), upsert=False)
        figures["replicate_s"] = round(time.perf_counter() - t0, 1)
        t0 = time.perf_counter()
        conn.execute("SET maintenance_work_mem = '1GB'")
        conn.execute(
            f"CREATE INDEX {INDEX} ON segment_embeddings USING hnsw ((embedding::vector(384)) vector_cosine_ops) "
            f"WHERE model = '{MODEL}'"
        )
        conn.execute("ANALYZE")
        conn.commit()
        figures["hnsw_build_s"] = round(time.perf_counter() - t0, 1)
        figures["segments"] = conn.execute("SELECT count(*) FROM segments").fetchone()[0]
    return figures


def timed(conn, questions, vectors, mode, options) -> tuple[list[float], list[list[int]]]:
    class _Fixed:
        def __init__(self, v):
            self.v = v

        def encode(self, texts):
            return [self.v]

    latencies, results = [], []
    for q, v in zip(questions, vectors, strict=True):
        t0 = time.perf_counter()
        hits = search(q.question, 10, mode, options=options, conn=conn, embedder=_Fixed(v))
        latencies.append(1000 * (time.perf_counter() - t0))
        results.append([h.segment_id for h in hits])
    return latencies, results


def pct(values: list[float], p: float) -> float:
    return round(float(np.percentile(values, p)), 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--target", type=int, default=200_000, help="segments in the warehouse (default 200000)"
    )
    parser.add_argument("--queries", type=int, default=200, help="questions to time (default 200)")
    parser.add_argument("--noise", type=float, default=0.3, help="norm of the noise added to copied vectors")
    parser.add_argument("--quick", action="store_true", help="20000 segments and 50 queries")
    parser.add_argument("--keep", action="store_true", help="reuse the database built last time")
    parser.add_argument("--database-url", help="server to use (default: the embedded one)")
    args = parser.parse_args(argv)
    target, n_queries = (20_000, 50) if args.quick else (args.target, args.queries)
    url = database_url("bench_query", args.database_url)
    embedder = CachedEmbedder(MODEL)
    report: dict[str, object] = {"target": target}
    if not args.keep:
        fresh_database(url)
        build(url, "huberman_dev", SegmentParams(), embedder, title_prefix=True)
        report |= replicate(url, target, args.noise)
    questions = load_questions(EVAL / "huberman_dev" / "questions.jsonl")[:n_queries]
    vectors = embedder.encode([q.question for q in questions])
    flat = SearchOptions(max_per_video=None, collapse_overlaps=False)
    with connect(url, autocommit=True) as conn:
        report["segments"] = conn.execute("SELECT count(*) FROM segments").fetchone()[0]
        timed(conn, questions[:5], vectors[:5], "hybrid", SearchOptions())  # warm caches
        for name, mode, options in [
            ("hybrid", "hybrid", SearchOptions()),
            ("text", "text", SearchOptions()),
            ("vector_hnsw", "vector", flat),
            (
                "vector_exact",
                "vector",
                SearchOptions(max_per_video=None, collapse_overlaps=False, exact=True),
            ),
        ]:
            lat, res = timed(conn, questions, vectors, mode, options)
            report[name] = {
                "p50_ms": pct(lat, 50),
                "p95_ms": pct(lat, 95),
                "mean_ms": round(statistics.mean(lat), 1),
            }
            report[f"_{name}_ids"] = res
    approx, exact = report.pop("_vector_hnsw_ids"), report.pop("_vector_exact_ids")
    for key in [k for k in report if k.startswith("_")]:
        report.pop(key)
    overlap = [len(set(a) & set(e)) / max(len(e), 1) for a, e in zip(approx, exact, strict=True)]
    report["hnsw_recall@10_vs_exact"] = round(statistics.mean(overlap), 4)
    report["exact_over_hnsw_p50"] = round(
        report["vector_exact"]["p50_ms"] / report["vector_hnsw"]["p50_ms"], 1
    )
    report["queries"] = len(questions)
    report["machine"] = f"{platform.machine()} cpus={os.cpu_count()}"
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
