"""Benchmark: what one more Dagster run and one more day of a run's range cost, in CPU-seconds.

    python bench/bench_run_cost.py [--runs 8] [--repeats 2]

`chaffee ingest` covers the days with videos by ranges of days (`ingest_runner.group_days`), weighing
a run's fixed cost against the empty days a longer range carries: `RUN_COST_IN_DAYS` is the ratio of
the two figures measured here. Runs of `ingest_job` over days without videos, in this process on the
project's instance in a fresh CHAFFEE_HOME (its own embedded PostgreSQL), counting this process's CPU
plus the server's: `--runs` runs of one day, then as many of 31 days, per repeat. Measured with
Dagster's event batching (what the `chaffee` command sets) and, as the baseline in the same run,
without it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_ingest import server_cpu  # noqa: E402

BATCH = "DAGSTER_EVENT_BATCH_SIZE"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-run-cost-") as home:
        os.environ["CHAFFEE_HOME"] = home
        for key in ("DATABASE_URL", "DAGSTER_PG_URL", "DAGSTER_HOME"):
            os.environ.pop(key, None)
        from chaffee_assets.warehouse.server import stop_embedded_server

        try:
            report = measure(Path(home) / "pgdata", args.runs, args.repeats)
        finally:
            os.environ.pop("DATABASE_URL", None)  # the instance's environment names the embedded server's
            stop_embedded_server()
    print(json.dumps(report))
    return 0


def measure(pgdata: Path, runs: int, repeats: int) -> dict[str, object]:
    from chaffee_assets import ingest_runner
    from chaffee_assets.dagster_instance import project_instance
    from chaffee_assets.defs.resources import video_source_config
    from chaffee_assets.settings import SAMPLE_LIBRARY, settings
    from chaffee_assets.warehouse.kept_connections import close_kept_connections
    from chaffee_assets.warehouse.migrate import ensure_schema

    ensure_schema()  # starts the embedded server
    # A library whose videos are all in 2024: every day measured below is empty.
    source = video_source_config(settings(), library_dir=str(SAMPLE_LIBRARY))
    config = {**ingest_runner.QUIET_CONSOLE, "resources": {"video_source": {"config": source}}}
    report: dict[str, object] = {"runs_per_figure": runs, "repeats": repeats}
    next_day = date(2016, 1, 1)
    with project_instance() as instance, ingest_runner._code_location(instance) as repository:
        job = ingest_runner._IngestJob(repository)

        def cpu_of(ranges: list[ingest_runner.DayRange]) -> float:
            before = time.process_time() + server_cpu(pgdata)
            report_ = ingest_runner._in_process(instance, job, ranges, config, {}, None)
            assert all(outcome.ok for outcome in report_.runs), report_.runs
            time.sleep(0.5)  # the server's backends finish their work
            return time.process_time() + server_cpu(pgdata) - before

        def ranges_of(days: int) -> list[ingest_runner.DayRange]:
            nonlocal next_day
            ranges = []
            for _ in range(runs):
                ranges.append(ingest_runner.DayRange(next_day, next_day + timedelta(days=days - 1)))
                next_day += timedelta(days=days + 1)
            return ranges

        cpu_of(ranges_of(3)[:2])  # the code location, resources and connections warm
        for label, batch in (("without_batching", None), ("with_batching", "100")):
            if batch is None:
                os.environ.pop(BATCH, None)
            else:
                os.environ[BATCH] = batch
            figures = []
            for _ in range(repeats):
                one_day = cpu_of(ranges_of(1)) / runs
                month = cpu_of(ranges_of(31)) / runs
                per_day = (month - one_day) / 30
                figures.append(
                    {
                        "run_of_1_day_cpu_s": round(one_day, 3),
                        "run_of_31_days_cpu_s": round(month, 3),
                        "per_day_cpu_s": round(per_day, 4),
                        "per_run_cpu_s": round(one_day - per_day, 3),
                        "run_cost_in_days": round((one_day - per_day) / per_day, 1),
                    }
                )
            report[label] = figures
    close_kept_connections()
    report["run_cost_in_days_now"] = ingest_runner.RUN_COST_IN_DAYS
    return report


if __name__ == "__main__":
    raise SystemExit(main())
