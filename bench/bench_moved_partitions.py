"""Benchmark: telling a Dagster instance what a moved warehouse holds, batched against one event at a time.

    python bench/bench_moved_partitions.py [--days 600]

A scratch warehouse on the embedded server holds one video on each of `--days` days, each with a
recorded outcome (so all four assets count the day as done: 4 x days materialisations). Each
way runs against its own fresh Dagster storage (dagster-postgres, a scratch database on the
same server): `report_held_partitions` (the read, then `store_event_batch` in batches of 500) and
the same events through `report_runless_asset_event`, one each. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_load import scratch  # noqa: E402

from chaffee_assets.dagster_instance import sqlalchemy_psycopg2_url  # noqa: E402
from chaffee_assets.moved_partitions import held_days, report_held_partitions  # noqa: E402
from chaffee_assets.warehouse.server import embedded_server_uri  # noqa: E402

MODEL = "all-MiniLM-L6-v2"


def fill(url: str, days: int) -> None:
    first = date(2016, 1, 1)
    with psycopg.connect(url) as conn:
        for n in range(days):
            video_id = f"day{n:05d}"
            conn.execute(
                "INSERT INTO videos (video_id, source, title, published_at, url) VALUES (%s, 'library', 't', %s, 'x')",
                (video_id, f"{first + timedelta(days=n)}T12:00:00Z"),
            )
            conn.execute(
                "INSERT INTO transcript_attempts (video_id, failure_class, message) VALUES (%s, 'unavailable', 'm')",
                (video_id,),
            )
        conn.commit()


def fresh_storage(name: str) -> str:
    admin = embedded_server_uri("postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return sqlalchemy_psycopg2_url(embedded_server_uri(name))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=600, help="days with a video (default 600)")
    args = parser.parse_args(argv)
    warehouse = scratch(None, "bench_moved_partitions")
    fill(warehouse, args.days)
    results: dict[str, object] = {"days": args.days, "load_before": os.getloadavg()[0]}
    with psycopg.connect(warehouse) as conn:
        held = held_days(conn, MODEL)
    results["events"] = sum(len(days) for days in held.values())

    overrides = {"storage": {"postgres": {"postgres_url": fresh_storage("bench_dagster_batched")}}}
    with dg.instance_for_test(overrides=overrides) as instance, psycopg.connect(warehouse) as conn:
        t0 = time.perf_counter()
        report_held_partitions(instance, conn, model=MODEL)
        results["batched_s"] = round(time.perf_counter() - t0, 2)
        shown = {a: len(instance.get_materialized_partitions(dg.AssetKey(a))) for a in held}
        assert all(count == args.days for count in shown.values()), shown

    overrides = {"storage": {"postgres": {"postgres_url": fresh_storage("bench_dagster_single")}}}
    with dg.instance_for_test(overrides=overrides) as instance:
        t0 = time.perf_counter()
        for asset, days in held.items():
            for day in days:
                instance.report_runless_asset_event(
                    dg.AssetMaterialization(asset_key=asset, partition=day.isoformat())
                )
        results["one_at_a_time_s"] = round(time.perf_counter() - t0, 2)
    results["speedup"] = round(results["one_at_a_time_s"] / results["batched_s"], 1)
    results["load_after"] = os.getloadavg()[0]
    results["machine"] = f"{platform.machine()} cpus={os.cpu_count()}"
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
