"""Benchmark: where the time of `chaffee ingest` goes through `chaffee dev`'s daemon, against the same
days in the command's own process.

    python bench/bench_daemon_path.py

Three days of the sample library (three runs), in a fresh CHAFFEE_HOME with its own embedded
PostgreSQL. First `chaffee dev` starts (webserver, daemon, code server); then `chaffee ingest` sends
the days as one backfill to the daemon, and the runs' own records split its wall time into: waiting
for the backfill daemon's tick (backfill submitted → first run created), waiting in the queue and for a
run worker process (created → started), and the runs themselves (started → ended). Then the same
days go to a second warehouse with `--in-process`, the baseline measured in the same session.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CHAFFEE = str(Path(sys.executable).parent / "chaffee")
VIDEOS = ("smplMeatDay", "smplLDL_hrt", "smplKetoWk1")  # 2024-01-15, 2024-02-12, 2024-05-13


def graphql(url: str, query: str) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps({"query": query}).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)["data"]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> int:
    home = Path(tempfile.mkdtemp(prefix="bench_daemon_"))
    library = home / "library"
    library.mkdir()
    for video_id in VIDEOS:
        for path in (ROOT / "chaffee_assets" / "sample_library").glob(f"{video_id}.*"):
            shutil.copy(path, library / path.name)
    env = {**os.environ, "CHAFFEE_HOME": str(home), "CHAFFEE_START_DATE": "2024-01-01",
           "CHAFFEE_LIBRARY_DIR": str(library)}  # fmt: skip
    for key in ("DATABASE_URL", "DAGSTER_PG_URL", "DAGSTER_HOME", "CHAFFEE_DAGSTER_PG_URL"):
        env.pop(key, None)
    port = free_port()
    url = f"http://127.0.0.1:{port}/graphql"
    started = time.monotonic()
    dev = subprocess.Popen([CHAFFEE, "dev", "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    figures: dict[str, float] = {}
    try:
        query = "{ instance { daemonHealth { allDaemonStatuses { daemonType healthy } } } }"
        while True:
            try:
                statuses = graphql(url, query)["instance"]["daemonHealth"]["allDaemonStatuses"]
                if {"BACKFILL", "QUEUED_RUN_COORDINATOR"} <= {
                    s["daemonType"] for s in statuses if s["healthy"]
                }:
                    break
            except OSError:
                pass
            time.sleep(1)
        figures["chaffee dev up"] = time.monotonic() - started
        submitted = time.time()
        started = time.monotonic()
        daemon = subprocess.run([CHAFFEE, "ingest", "--library", str(library)], env=env,
                                capture_output=True, text=True)  # fmt: skip
        figures["ingest through the daemon"] = time.monotonic() - started
        assert daemon.returncode == 0, daemon.stdout + daemon.stderr
        runs = graphql(url, "{ runsOrError { ... on Runs { results { creationTime startTime endTime } } } }")
        records = runs["runsOrError"]["results"]
        [backfill] = graphql(
            url, "{ partitionBackfillsOrError { ... on PartitionBackfills { results { timestamp } } } }"
        )["partitionBackfillsOrError"]["results"]
        figures["command start-up, listing, code location (→ backfill submitted)"] = (
            backfill["timestamp"] - submitted
        )
        figures["backfill daemon tick wait (submitted → first run created)"] = (
            min(r["creationTime"] for r in records) - backfill["timestamp"]
        )
        figures["queue + run worker start, mean per run"] = sum(
            r["startTime"] - r["creationTime"] for r in records
        ) / len(records)
        figures["run execution, mean per run"] = sum(r["endTime"] - r["startTime"] for r in records) / len(
            records
        )
        figures["first run created → last run ended"] = max(r["endTime"] for r in records) - min(
            r["creationTime"] for r in records
        )
        # The baseline: the same days in the command's own process, into a second warehouse.
        second = {**env, "DATABASE_URL": env_database(home, "bench_in_process")}
        started = time.monotonic()
        local = subprocess.run([CHAFFEE, "ingest", "--library", str(library), "--in-process"], env=second,
                               capture_output=True, text=True)  # fmt: skip
        figures["ingest in process (baseline)"] = time.monotonic() - started
        assert local.returncode == 0, local.stdout + local.stderr
    finally:
        os.killpg(dev.pid, signal.SIGINT)
        dev.wait(timeout=120)
        from chaffee_assets.warehouse.server import stop_embedded_server

        os.environ["CHAFFEE_HOME"] = str(home)
        os.environ.pop("DATABASE_URL", None)
        stop_embedded_server()
    print(json.dumps({name: round(value, 1) for name, value in figures.items()}, indent=2))
    return 0


def env_database(home: Path, name: str) -> str:
    """A new database on the bench's embedded server."""
    os.environ["CHAFFEE_HOME"] = str(home)
    import psycopg

    from chaffee_assets.warehouse.server import embedded_server_uri

    admin = embedded_server_uri("postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return admin.replace("/postgres?", f"/{name}?", 1)


if __name__ == "__main__":
    sys.exit(main())
