"""SIGTERM to `chaffee ingest` stops it: the running range is interrupted and no further range starts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from chaffee_assets_tests.hostile_library import SMALL_VIDEOS, copy_real_video

CHAFFEE = str(Path(sys.executable).parent / "chaffee")


def wait_for_row(url: str, query: str, *params: object, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(url, autocommit=True) as conn:
        while conn.execute(query, params).fetchone() is None:
            assert time.monotonic() < deadline, f"no row for {query} {params}"
            time.sleep(0.02)


@pytest.mark.slow  # a cold `chaffee ingest` imports Dagster and torch and loads the model: about a minute
def test_sigterm_stops_chaffee_ingest_before_the_next_range(tmp_path: Path, warehouse_url: str) -> None:
    library = tmp_path / "library"
    first_day = datetime(2022, 3, 1, 9, tzinfo=UTC)
    for offset, video_id in enumerate(SMALL_VIDEOS):  # one video a day, one range a day
        copy_real_video(library, video_id, published=first_day + timedelta(days=offset))
    env = {**os.environ, "DATABASE_URL": warehouse_url}
    process = subprocess.Popen(
        [CHAFFEE, "ingest", "--library", str(library), "--days-per-run", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    lines = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if line.strip().startswith("[1/4]"):
                break
        # Signal while the second range's run is inside its steps, not between runs: Dagster owns
        # SIGTERM then, interrupts the step and fails the run, and the command must still stop.
        wait_for_row(warehouse_url, "SELECT 1 FROM videos WHERE video_id = %s", SMALL_VIDEOS[1])
        process.send_signal(signal.SIGTERM)
        rest, err = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
    out = "".join(lines) + rest

    assert process.returncode == 128 + signal.SIGTERM, out + err
    assert err.strip().splitlines()[-1] == "stopped (SIGTERM)" and "Traceback" not in err
    assert "[1/4] 2022-03-01: ok" in out
    assert "[3/4]" not in out and "[4/4]" not in out and "summary for" not in out
