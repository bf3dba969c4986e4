"""The code location's shape (assets, checks, partitions, job, schedule, sensor, pools) changes only on purpose.

An accidental edit — a check that stops blocking, a pool dropped, a partition start moved, a
schedule that no longer starts on its own — fails here with the difference shown. After a change
made on purpose, refresh the snapshot and commit it with the change:

    CHAFFEE_UPDATE_SNAPSHOT=1 .venv/bin/pytest chaffee_assets_tests/test_definitions_snapshot.py
"""

from __future__ import annotations

import difflib
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SNAPSHOT = Path(__file__).resolve().parent / "snapshots" / "definitions.json"


def _current() -> str:
    # A fresh process without CHAFFEE_* variables: the snapshot is of the defaults.
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAFFEE_")}
    result = subprocess.run(
        [sys.executable, "-m", "chaffee_assets_tests.definitions_snapshot"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    return result.stdout


def test_the_definitions_match_the_snapshot():
    current = _current()
    if os.environ.get("CHAFFEE_UPDATE_SNAPSHOT"):
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(current)
    expected = SNAPSHOT.read_text()
    if current != expected:
        diff = "".join(
            difflib.unified_diff(expected.splitlines(True), current.splitlines(True), "snapshot", "now")
        )
        raise AssertionError(
            "the code location's definitions changed; if on purpose, refresh the snapshot "
            f"(CHAFFEE_UPDATE_SNAPSHOT=1) and commit it:\n{diff}"
        )


def test_the_snapshot_names_what_operators_rely_on():
    snapshot = json.loads(SNAPSHOT.read_text())
    assert snapshot["pools"] == {"gpu": 1}
    assert snapshot["assets"]["transcripts"]["pool"] == "gpu"
    assert snapshot["jobs"]["ingest_job"]["assets"] == [
        "segment_embeddings",
        "segments",
        "speaker_labels",
        "transcripts",
        "videos",
    ]
    assert snapshot["schedules"]["daily_ingest_schedule"]["default_status"] == "RUNNING"
    assert snapshot["code_location"] == [
        {"location_name": "chaffee_assets", "module_name": "chaffee_assets.definitions"}
    ]
