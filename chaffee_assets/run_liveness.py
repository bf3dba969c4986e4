"""Runs whose process is gone: telling them apart from live ones, and closing them as failed.

`chaffee ingest` executes its runs in its own process. Killed there (SIGKILL, a crash, a lost
terminal), it cannot report the end of the run it was executing, and Dagster would show that run
`STARTED` (or `NOT_STARTED`) for ever, counting it against the instance's run limit. Each such run
carries a tag naming the process that executes it (host, pid and the process's start time, so a
reused pid is not mistaken for it), and a run whose process is gone is marked failed with a reason:

- by the next `chaffee ingest` or `chaffee demo`, before it starts its own runs (`close_dead_runs`);
- by the daemon's run monitoring where `chaffee dev` runs: dagster.yaml names `WatchedRunLauncher`,
  which launches runs like Dagster's default launcher and also answers run monitoring's health
  check for these runs.

Runs without the tag (launched by the daemon into a code server) are left to Dagster: the code
server reports its own run workers that die.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from dagster._core.launcher import CheckRunHealthResult, WorkerStatus
from dagster._core.launcher.default_run_launcher import DefaultRunLauncher
from dagster._core.storage.dagster_run import DagsterRun, RunsFilter
from dagster._core.storage.tags import PARENT_RUN_ID_TAG

WORKER_TAG = "chaffee/worker"  # "<host>:<pid>:<start time>" of the process executing the run
# Every status in which a run still counts as running somewhere (and against the run limit).
OPEN_STATUSES = [
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


@dataclass(frozen=True)
class Worker:
    """The process a run executes in."""

    host: str
    pid: int
    started: str  # the kernel's start time of the process ("" where the platform does not say)

    def __str__(self) -> str:
        return f"{self.host}:{self.pid}:{self.started}"

    @classmethod
    def parse(cls, tag: str) -> Worker | None:
        try:
            host, pid, started = tag.rsplit(":", 2)
            return cls(host, int(pid), started)
        except ValueError:
            return None

    def describe(self) -> str:
        return f"process {self.pid} on {self.host}"


def this_process() -> Worker:
    pid = os.getpid()
    return Worker(socket.gethostname(), pid, process_start_time(pid) or "")


def worker_tags() -> dict[str, str]:
    """Tags for a run this process executes itself."""
    return {WORKER_TAG: str(this_process())}


def process_start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux /proc), None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return ""
    # The command name (field 2) is in parentheses and may hold spaces: count fields after its end.
    return stat[stat.rindex(")") + 2 :].split()[19]


def is_gone(worker: Worker) -> bool | None:
    """Whether the worker's process has ended: None when this host cannot tell (another host)."""
    if worker.host != socket.gethostname():
        return None
    try:
        os.kill(worker.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # a process of another user holds the pid: compared by start time below
    if not worker.started or not Path("/proc").is_dir():
        return False
    return process_start_time(worker.pid) != worker.started  # the pid was reused by a later process


def dead_worker_reason(run: DagsterRun) -> str | None:
    """Why the run is over although its status says otherwise; None while it may still be running."""
    if run.parent_run_id or PARENT_RUN_ID_TAG in run.tags:
        # A re-execution or a retry (from the UI or the daemon) copies its parent's tags, this one
        # included, but runs in a process of its own: the tag is not about it.
        return None
    tag = run.tags.get(WORKER_TAG)
    worker = Worker.parse(tag) if tag else None
    if worker is None or not is_gone(worker):
        return None
    return (
        f"the process executing this run ({worker.describe()}) ended without finishing it "
        f"(killed or crashed while the run was {run.status.value}); re-run its days"
    )


def close_dead_runs(instance: dg.DagsterInstance) -> list[DagsterRun]:
    """Mark failed, with the reason, every open run whose executing process is gone; returns them.

    Failing the run also frees the run slot and any pool slots it held.
    """
    closed = []
    for run in instance.get_runs(RunsFilter(statuses=OPEN_STATUSES)):
        reason = dead_worker_reason(run)
        if reason is None:
            continue
        current = instance.get_run_by_id(run.run_id)
        if current is None or current.status not in OPEN_STATUSES:
            continue  # it finished meanwhile
        instance.report_run_failed(current, f"Marked failed: {reason}.")
        closed.append(current)
    return closed


class WatchedRunLauncher(DefaultRunLauncher):
    """Dagster's default launcher, also telling run monitoring which runs lost their process.

    Run monitoring (dagster.yaml `run_monitoring`) asks a launcher that supports it about every
    `STARTED` run; a run answered FAILED is marked failed with the reason. Runs this launcher
    cannot judge are reported RUNNING, so monitoring leaves them alone.
    """

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        reason = dead_worker_reason(run)
        if reason is None:
            return CheckRunHealthResult(WorkerStatus.RUNNING)
        return CheckRunHealthResult(WorkerStatus.FAILED, msg=reason)
