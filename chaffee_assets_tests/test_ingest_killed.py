"""`chaffee ingest` stopped the hard way: killed with SIGKILL, or its database gone under it.

A killed command leaves no run open for good: the next `chaffee ingest` (and, where a daemon runs,
Dagster's run monitoring) marks the run it was executing failed, with the reason. A database that
dies mid-run ends the command with one line and exit status 2.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.launcher import CheckRunHealthResult
from dagster._core.storage.dagster_run import RunsFilter

from chaffee_assets.dagster_instance import project_instance
from chaffee_assets.ingest_runner import INGEST_JOB, RANGE_START_TAG
from chaffee_assets.run_liveness import OPEN_STATUSES, WORKER_TAG, Worker, process_start_time, this_process
from chaffee_assets.warehouse.migrate import upgrade
from chaffee_assets_tests.conftest import _fresh_database
from chaffee_assets_tests.hostile_library import SMALL_VIDEOS, copy_real_video
from chaffee_assets_tests.pg_proxy import UnixSocketProxy, tcp_url, unix_socket_of
from chaffee_assets_tests.test_ingest_termination import wait_for_row

CHAFFEE = str(Path(sys.executable).parent / "chaffee")
FIRST_DAY = datetime(2022, 4, 1, 9, tzinfo=UTC)
LAST_DAY = FIRST_DAY + timedelta(days=len(SMALL_VIDEOS) - 1, hours=2)
PRIVATE_VIDEO = "privVideo01"
RUN_TIMEOUT_S = 300  # a cold `chaffee ingest` imports Dagster and torch and loads the model on 2 cores


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One small real video a day: with --days-per-run 1, one run a day."""
    folder = tmp_path_factory.mktemp("killed_library")
    for offset, video_id in enumerate(SMALL_VIDEOS):
        copy_real_video(folder, video_id, published=FIRST_DAY + timedelta(days=offset))
    # Beside the last day's video, one that went private: it gets no transcript.
    copy_real_video(
        folder, SMALL_VIDEOS[0], published=LAST_DAY, as_id=PRIVATE_VIDEO, fields={"availability": "private"}
    )
    return folder


@pytest.fixture
def instance(warehouse_url: str) -> Iterator[dg.DagsterInstance]:
    """The project's instance, on the `dagster` database beside the test's warehouse."""
    with project_instance() as instance:
        yield instance


def start_ingest(database_url: str, library: Path, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "DATABASE_URL": database_url}
    return subprocess.Popen(
        [CHAFFEE, "ingest", "--library", str(library), "--days-per-run", "1", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip


def open_runs_of(instance: dg.DagsterInstance, day: str) -> list[dg.DagsterRun]:
    """Open runs of the day (the instance's database is shared by the session's tests: one day each)."""
    runs = instance.get_runs(RunsFilter(statuses=OPEN_STATUSES, tags={RANGE_START_TAG: day}))
    return [run for run in runs if run.job_name == INGEST_JOB]


def failure_message(instance: dg.DagsterInstance, run_id: str) -> str:
    [record] = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records
    return record.event_log_entry.dagster_event.message


def kill_mid_run(warehouse_url: str, library: Path) -> tuple[int, str]:
    """`chaffee ingest` killed while its second run is inside its steps; its pid and output so far."""
    process = start_ingest(warehouse_url, library)
    lines = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if line.strip().startswith("[1/4]"):
                break
        wait_for_row(warehouse_url, "SELECT 1 FROM videos WHERE video_id = %s", SMALL_VIDEOS[1])
        process.kill()
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == -signal.SIGKILL
    return process.pid, "".join(lines)


@dataclass
class KilledThenAgain:
    killed_pid: int
    killed_output: str
    left_open: dg.DagsterRun
    health: CheckRunHealthResult  # what the daemon's run monitoring is told about the open run
    again: subprocess.CompletedProcess[str]  # the next `chaffee ingest`, over the last day


@pytest.fixture(scope="module")
def killed_then_again(library: Path, embedded_admin_url: str) -> Iterator[KilledThenAgain]:
    """`chaffee ingest` killed mid-run, then `chaffee ingest` over the last day (two cold processes)."""
    url = _fresh_database(embedded_admin_url, "killed")
    upgrade(url)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DATABASE_URL", url)
        with project_instance() as instance:
            pid, out = kill_mid_run(url, library)
            [left_open] = open_runs_of(instance, "2022-04-02")
            health = instance.run_launcher.check_run_worker_health(left_open)
            again = subprocess.run(
                [CHAFFEE, "ingest", "--library", str(library), "--from", LAST_DAY.date().isoformat()],
                capture_output=True, text=True, timeout=RUN_TIMEOUT_S, env={**os.environ, "DATABASE_URL": url},
            )  # fmt: skip
            yield KilledThenAgain(pid, out, left_open, health, again)


@pytest.mark.slow  # two cold `chaffee ingest` processes: about two minutes
def test_the_next_ingest_marks_the_run_a_killed_ingest_left_open_failed(
    killed_then_again: KilledThenAgain,
) -> None:
    killed = killed_then_again
    assert "[1/4] 2022-04-01: ok" in killed.killed_output, killed.killed_output
    assert killed.left_open.status == dg.DagsterRunStatus.STARTED
    assert killed.health.status.value == "FAILED" and f"process {killed.killed_pid} on" in killed.health.msg

    again = killed.again
    assert again.returncode == 0, again.stdout + again.stderr
    run_id = killed.left_open.run_id
    assert f"marked 1 run(s) failed that a stopped command had left open: {run_id[:8]}" in again.stdout
    with project_instance() as instance:
        assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.FAILURE
        reason = failure_message(instance, run_id)
        assert open_runs_of(instance, "2022-04-02") == []
    assert f"the process executing this run (process {killed.killed_pid} on" in reason
    assert "re-run its days" in reason


@pytest.mark.slow  # shares the processes above
def test_ingest_names_each_video_that_failed_with_its_reason_and_what_to_do(
    killed_then_again: KilledThenAgain,
) -> None:
    out = killed_then_again.again.stdout
    [run_line] = [line for line in out.splitlines() if line.strip().startswith("[1/1]")]
    assert ": ok" not in run_line
    assert "2022-04-04: 1 video(s) without a transcript (listed in the summary)" in run_line
    assert "failures:     1 unavailable" in out
    assert f"    {PRIVATE_VIDEO} (2022-04-04, " in out
    [hint] = [line for line in out.splitlines() if line.startswith("      → ")]
    assert "private, deleted, members-only" in hint and "final, not retried" in hint


@dg.op
def _nothing() -> None:
    pass


@dg.job
def _run_in_some_process() -> None:
    _nothing()


def started_run(instance: dg.DagsterInstance, worker: Worker, **tags: str) -> dg.DagsterRun:
    """A run STARTED in the instance, executing (its tag says) in `worker`."""
    run = instance.create_run_for_job(_run_in_some_process, tags={WORKER_TAG: str(worker), **tags})
    start = dg.DagsterEvent(event_type_value=dg.DagsterEventType.RUN_START.value, job_name=run.job_name)
    instance.report_dagster_event(start, run_id=run.run_id)
    run = instance.get_run_by_id(run.run_id)
    assert run.status == dg.DagsterRunStatus.STARTED
    return run


def test_run_monitoring_fails_a_started_run_whose_process_is_gone_and_leaves_a_live_one(
    warehouse_url: str, instance: dg.DagsterInstance
) -> None:
    from dagster._daemon.monitoring.run_monitoring import monitor_started_run

    ended = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    ended_worker = Worker(this_process().host, ended.pid, process_start_time(ended.pid) or "")
    ended.kill()
    ended.wait()
    dead, alive = started_run(instance, ended_worker), started_run(instance, this_process())
    # A re-execution from the UI copies its parent's tags, the worker's included, and runs elsewhere.
    reexecuted = started_run(instance, ended_worker, **{"dagster/parent_run_id": dead.run_id})

    # One pass of the daemon's run monitoring over the runs, with the launcher dagster.yaml names.
    for run in (dead, alive, reexecuted):
        [record] = instance.get_run_records(RunsFilter(run_ids=[run.run_id]))
        monitor_started_run(instance, None, record, logging.getLogger("run_monitoring"))

    assert instance.get_run_by_id(dead.run_id).status == dg.DagsterRunStatus.FAILURE
    message = failure_message(instance, dead.run_id)
    assert "Detected run worker status FAILED" in message and f"process {ended.pid} on" in message
    assert instance.get_run_by_id(alive.run_id).status == dg.DagsterRunStatus.STARTED
    assert instance.get_run_by_id(reexecuted.run_id).status == dg.DagsterRunStatus.STARTED


@pytest.mark.slow  # a cold `chaffee ingest` process: about a minute
def test_a_database_dying_under_ingest_ends_it_with_one_line_and_status_2(
    warehouse_url: str, library: Path
) -> None:
    with UnixSocketProxy(unix_socket_of(warehouse_url)) as proxy:
        process = start_ingest(tcp_url(warehouse_url, proxy.port), library)
        try:
            wait_for_row(warehouse_url, "SELECT 1 FROM videos WHERE video_id = %s", SMALL_VIDEOS[1])
            proxy.cut()
            out, err = process.communicate(timeout=RUN_TIMEOUT_S)
        finally:
            if process.poll() is None:
                process.kill()

    assert process.returncode == 2, out + err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: the connection to PostgreSQL failed: server closed the connection"), err
    assert "Traceback" not in out + err and "Retrying" not in out + err
