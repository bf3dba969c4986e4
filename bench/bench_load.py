"""Benchmark: write segments and their embeddings with binary COPY vs row-by-row INSERT.

    python bench/bench_load.py [--segments 50000] [--with-index] [--quick]

Uses a scratch database on the warehouse's server (or `--database-url`), dropped and recreated.
Segments are written first, as the product writes them (binary COPY, the postings and BM25 statistics
triggers); then the same vectors are written three ways and timed against row-by-row INSERT, and the
product's upsert is timed with and without the vectors' sign bits (migration 0010). The
whole write path at 200 000 segments of real text, HNSW included, is in bench_query.py's `load`.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chaffee_assets.retrieval import store  # noqa: E402
from chaffee_assets.retrieval.segmenter import Segment  # noqa: E402
from chaffee_assets.warehouse import connect  # noqa: E402
from chaffee_assets.warehouse.migrate import available_migrations, upgrade  # noqa: E402

MODEL = "all-MiniLM-L6-v2"


def scratch(url: str | None, name: str) -> str:
    if not url:
        from chaffee_assets.warehouse.server import embedded_server_uri

        url = embedded_server_uri(name)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
    upgrade(url)
    return url


def prepare(conn: psycopg.Connection, n: int) -> tuple[list[int], float]:
    """n segments of random words in videos of 1 000 segments each, written by the product's
    `replace_segments` (binary COPY, the postings and BM25 statistics triggers maintained).
    Returns their ids and the seconds the segment writes took."""
    words = [
        "fasting",
        "insulin",
        "ketones",
        "sleep",
        "light",
        "dopamine",
        "protein",
        "meat",
        "fat",
        "carbohydrate",
    ]
    rng = np.random.default_rng(0)
    ids: list[int] = []
    seconds = 0.0
    per_video = 1_000  # a segment's times must lie within a week of its video's start
    for first in range(0, n, per_video):
        video_id = f"bench{first // per_video:05d}"
        conn.execute(
            "INSERT INTO videos (video_id, source, title, published_at, url) "
            "VALUES (%s, 'library', 'b', now(), 'x')",
            (video_id,),
        )
        tid = conn.execute(
            "INSERT INTO transcripts (video_id, version, source, cues) "
            "VALUES (%s, 1, 'library_file', '[]') RETURNING transcript_id",
            (video_id,),
        ).fetchone()[0]
        conn.commit()
        segs = [
            Segment(i, 30.0 * i, 30.0 * i + 60, " ".join(rng.choice(words, 120)))
            for i in range(min(per_video, n - first))
        ]
        t0 = time.perf_counter()
        ids.extend(store.replace_segments(conn, video_id, tid, segs))
        seconds += time.perf_counter() - t0
    return ids, seconds


def clear(conn: psycopg.Connection) -> None:
    conn.execute("TRUNCATE segment_embeddings")
    conn.commit()


def set_sign_bits(conn: psycopg.Connection, present: bool) -> None:
    """Drop migration 0010's sign-bit column (its index goes with it), or apply the migration's own
    SQL again (on an empty table: no rewrite)."""
    conn.execute("ALTER TABLE segment_embeddings DROP COLUMN IF EXISTS embedding_bits")
    if present:
        (sign_bits,) = [m for m in available_migrations() if m.path.name == "0010_embedding_sign_bits.sql"]
        conn.execute(sign_bits.sql)
    conn.commit()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, default=50_000, help="rows to load (default 50000)")
    parser.add_argument("--quick", action="store_true", help="5000 rows, for a smoke run")
    parser.add_argument(
        "--with-index", action="store_true", help="keep the HNSW index during the writes (default: drop it)"
    )
    parser.add_argument("--database-url", help="server to use (default: the embedded one)")
    args = parser.parse_args(argv)
    n = 5_000 if args.quick else args.segments
    url = scratch(args.database_url, "bench_load")
    vectors = np.random.default_rng(1).standard_normal((n, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    results: dict[str, object] = {"segments": n, "hnsw_index_during_writes": args.with_index}
    with connect(url) as conn:
        ids, results["segments_write_s"] = prepare(conn, n)
        results["segments_write_s"] = round(results["segments_write_s"], 2)
        if not args.with_index:
            # Without it the figures compare the write paths; with it both pay the same graph inserts.
            conn.execute("DROP INDEX segment_embeddings_hnsw_all_minilm_l6_v2")
        clear(conn)
        t0 = time.perf_counter()
        with conn.transaction(), conn.cursor() as cur:
            for segment_id, vec in zip(ids, vectors, strict=True):
                cur.execute(
                    "INSERT INTO segment_embeddings (segment_id, model, embedding) VALUES (%s, %s, %s)",
                    (segment_id, MODEL, vec),
                )
        results["insert_row_by_row_s"] = round(time.perf_counter() - t0, 2)
        clear(conn)
        t0 = time.perf_counter()
        store.write_embeddings(conn, MODEL, zip(ids, vectors, strict=True))
        results["copy_binary_upsert_s"] = round(time.perf_counter() - t0, 2)
        clear(conn)
        t0 = time.perf_counter()
        store.write_embeddings(conn, MODEL, zip(ids, vectors, strict=True), upsert=False)
        results["copy_binary_direct_s"] = round(time.perf_counter() - t0, 2)
        # What the sign bits (migration 0010: a generated column and an index on the key) cost the
        # product's write path: the same upsert with and without them, three times each, alternating.
        # The table is empty before each write, so adding the column back rewrites nothing.
        timings: dict[bool, list[float]] = {True: [], False: []}
        for present in (True, False) * 3:
            set_sign_bits(conn, present)
            clear(conn)
            t0 = time.perf_counter()
            store.write_embeddings(conn, MODEL, zip(ids, vectors, strict=True))
            timings[present].append(time.perf_counter() - t0)
        results["copy_binary_upsert_with_sign_bits_s"] = [round(t, 2) for t in timings[True]]
        results["copy_binary_upsert_without_sign_bits_s"] = [round(t, 2) for t in timings[False]]
        results["sign_bits_write_cost"] = round(
            statistics.median(timings[True]) / statistics.median(timings[False]), 2
        )
    results["speedup_upsert"] = round(results["insert_row_by_row_s"] / results["copy_binary_upsert_s"], 2)
    results["speedup_direct"] = round(results["insert_row_by_row_s"] / results["copy_binary_direct_s"], 2)
    results["machine"] = (
        f"{platform.machine()} {platform.processor() or ''} cpus={__import__('os').cpu_count()}"
    )
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
