"""Benchmark: search latency at channel-history scale, and HNSW recall against the exact scan.

    python bench/bench_query.py [--corpus distinct|copies] [--target 200000] [--queries 200] [--quick]
                                [--keep] [--shared-buffers 128MB,2GB]

The library is `bench/scale_corpus.py`'s: distinct text recombined from the real transcripts
(default), or the stress case of copied windows with perturbed vectors. It is written through the
product's store functions (see bench_load.py for that write path's figures); queries are the dev
set's questions, each embedded once. Reported per query kind: p50/p95 ms; for the vector ranking,
recall@10 of HNSW against the exact scan at several `hnsw.ef_search` (the function sets it to twice
the candidate depth, so depth d means ef_search 2d). Baselines in the same run: the exact scan for
the vector side, and the text ranking alone for what BM25 costs inside hybrid; with
`--shared-buffers`, the same searches under PostgreSQL's default buffer size beside the product's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_support import EVAL, CachedEmbedder, database_url, fresh_database  # noqa: E402
from scale_corpus import copied_videos, load_through_product, source_blocks, synthetic_videos  # noqa: E402

from chaffee_assets.retrieval.evaluation import load_questions  # noqa: E402
from chaffee_assets.search import SearchOptions, search  # noqa: E402
from chaffee_assets.warehouse import connect  # noqa: E402

MODEL = "all-MiniLM-L6-v2"


class _Fixed:
    """A query embedder that returns a vector computed beforehand."""

    def __init__(self, vector: np.ndarray) -> None:
        self.vector = vector

    def encode_queries(self, texts):
        return [self.vector]


def timed(conn, questions, vectors, mode, options, **filters) -> tuple[list[float], list[list[int]]]:
    latencies, results = [], []
    for q, v in zip(questions, vectors, strict=True):
        t0 = time.perf_counter()
        hits = search(
            q.question, 10, mode, options=options, conn=conn, embedder=_Fixed(v), reranker="", **filters
        )
        latencies.append(1000 * (time.perf_counter() - t0))
        results.append([h.segment_id for h in hits])
    return latencies, results


def steady(conn, questions, vectors, mode, options, **filters) -> list[float]:
    """Latencies in the steady state: one untimed pass first reads what these questions touch under
    this mode and filter (postings, segment and vector pages) into memory, as a serving database
    holds its working set. Otherwise a mode timed first, or the first under a filter whose vectors
    no earlier mode read, pays every page fault (a year filter measured p95 1.1 s that way, 70 ms
    warm, right after the server started)."""
    timed(conn, questions, vectors, mode, options, **filters)
    return timed(conn, questions, vectors, mode, options, **filters)[0]


def restart_embedded_server(shared_buffers: str) -> None:
    """Stop the embedded server and start it again with `shared_buffers`."""
    from chaffee_assets.warehouse.server import embedded_server_uri, stop_embedded_server

    os.environ["CHAFFEE_DB_SHARED_BUFFERS"] = shared_buffers
    stop_embedded_server()
    embedded_server_uri("postgres")


def pct(values: list[float], p: float) -> float:
    return round(float(np.percentile(values, p)), 1)


def summary(latencies: list[float]) -> dict[str, float]:
    return {
        "p50_ms": pct(latencies, 50),
        "p95_ms": pct(latencies, 95),
        "mean_ms": round(statistics.mean(latencies), 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", choices=("distinct", "copies"), default="distinct")
    parser.add_argument(
        "--target", type=int, default=200_000, help="segments in the library (default 200000)"
    )
    parser.add_argument("--queries", type=int, default=200, help="questions to time (default 200)")
    parser.add_argument("--quick", action="store_true", help="20000 segments and 50 queries")
    parser.add_argument("--keep", action="store_true", help="reuse the database built last time")
    parser.add_argument("--database-url", help="server to use (default: the embedded one)")
    parser.add_argument(
        "--shared-buffers",
        metavar="SIZE,SIZE",
        help="time the searches under each of these embedded-server buffer sizes in turn (e.g. 128MB,2GB)",
    )
    args = parser.parse_args(argv)
    if args.shared_buffers and args.database_url:
        parser.error("--shared-buffers restarts the embedded server; it cannot be used with --database-url")
    target, n_queries = (20_000, 50) if args.quick else (args.target, args.queries)
    url = database_url(f"bench_query_{args.corpus}", args.database_url)
    embedder = CachedEmbedder(MODEL)
    report: dict[str, object] = {"corpus": args.corpus, "target": target}
    if not args.keep:
        fresh_database(url)
        sources = source_blocks(embedder)
        make = synthetic_videos if args.corpus == "distinct" else copied_videos
        report["load"] = load_through_product(url, list(make(sources, target)), MODEL, embedder.dimension)
        with connect(url, autocommit=True) as conn:
            # What autovacuum does on a serving database within a minute of a bulk load: the
            # visibility map lets BM25 read its postings from the index alone.
            started = time.perf_counter()
            conn.execute("VACUUM ANALYZE")
            report["load"]["vacuum_analyze_s"] = round(time.perf_counter() - started, 1)
    questions = load_questions(EVAL / "huberman_dev" / "questions.jsonl")[:n_queries]
    vectors = embedder.encode_queries([q.question for q in questions])
    flat = SearchOptions(max_per_video=None, collapse_overlaps=False)
    year = {"published_from": date(2020, 1, 1), "published_to": date(2020, 12, 31)}
    quarter = {"published_from": date(2020, 1, 1), "published_to": date(2020, 3, 31)}
    from_2018 = {"published_from": date(2018, 1, 1), "published_to": None}  # wide: the HNSW path
    modes = [
        ("hybrid", "hybrid", SearchOptions(), {}),
        ("hybrid_filtered_year", "hybrid", SearchOptions(), year),
        ("hybrid_filtered_quarter", "hybrid", SearchOptions(), quarter),
        ("hybrid_filtered_from_2018", "hybrid", SearchOptions(), from_2018),
        ("text", "text", SearchOptions(), {}),
        ("vector_hnsw", "vector", flat, {}),
    ]
    if args.shared_buffers:
        # The embedded server restarted with each buffer size in turn, the same questions timed under
        # each; the rest of the report is then measured under the last size.
        report["by_shared_buffers"] = {}
        for size in args.shared_buffers.split(","):
            restart_embedded_server(size)
            with connect(url, autocommit=True) as conn:
                report["by_shared_buffers"][size] = {
                    name: summary(steady(conn, questions, vectors, mode, options, **filters))
                    for name, mode, options, filters in modes
                }
    with connect(url, autocommit=True) as conn:
        report["shared_buffers"] = conn.execute("SHOW shared_buffers").fetchone()[0]
        report["segments"] = conn.execute("SELECT count(*) FROM segments").fetchone()[0]
        for name, where in (("year", year), ("quarter", quarter), ("from_2018", from_2018)):
            report[f"segments_in_{name}"] = conn.execute(
                "SELECT count(*) FROM segments s JOIN videos v USING (video_id) "
                "WHERE v.partition_date >= %s AND (%s::date IS NULL OR v.partition_date <= %s)",
                (where["published_from"], where["published_to"], where["published_to"]),
            ).fetchone()[0]
        for name, mode, options, filters in modes:
            report[name] = summary(steady(conn, questions, vectors, mode, options, **filters))
        exact_lat, exact = timed(
            conn,
            questions,
            vectors,
            "vector",
            SearchOptions(max_per_video=None, collapse_overlaps=False, exact=True),
        )
        report["vector_exact"] = summary(exact_lat)
        recall = {}
        for ef in (40, 100, 200, 400):
            options = SearchOptions(max_per_video=None, collapse_overlaps=False, candidates=max(ef // 2, 10))
            lat, approx = timed(conn, questions, vectors, "vector", options)
            overlap = [len(set(a) & set(e)) / max(len(e), 1) for a, e in zip(approx, exact, strict=True)]
            recall[f"ef_search_{ef}"] = {
                "recall@10": round(statistics.mean(overlap), 4),
                "p50_ms": pct(lat, 50),
            }
        report["hnsw_vs_exact"] = recall
    report["hybrid_over_text_p95"] = round(report["hybrid"]["p95_ms"] / report["text"]["p95_ms"], 2)
    report["exact_over_hnsw_p50"] = round(
        report["vector_exact"]["p50_ms"] / report["vector_hnsw"]["p50_ms"], 1
    )
    report["queries"] = len(questions)
    report["machine"] = f"{platform.machine()} cpus={os.cpu_count()}"
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
