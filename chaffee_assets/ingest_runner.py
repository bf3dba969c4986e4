"""Materialising the four assets for the days that have videos, on behalf of a terminal command.

`chaffee ingest` and `chaffee demo` use this. Their runs belong to the `chaffee_assets` code location,
so the UI lists them with the others and can re-execute them. The days are grouped into ranges of at
most `MAX_PARTITIONS_PER_RUN` (the assets' backfill policy), each starting and ending on a day with
videos, weighing a run's fixed cost against the empty days a range carries (`group_days`).

Two paths:
- **a daemon is running** on the instance (`chaffee dev` is up): one asset backfill is submitted
  through the instance, and the daemon launches its runs by the backfill policy, queued under the
  instance's run limits like a backfill started in the UI. The command follows the runs' events.
- **no daemon** (the common case from a terminal): the runs execute one after another in this
  process, as runs of `ingest_job` created with the code location's origin.
If a daemon's heartbeat is recent but nothing picks the backfill up, it is cancelled and the runs go
the second way.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from typing import Protocol

import dagster as dg

from chaffee_assets.defs.partitions import MAX_PARTITIONS_PER_RUN, days_in, videos_daily_partition
from chaffee_assets.run_liveness import close_dead_runs, worker_tags
from chaffee_assets.settings import PROJECT_ROOT

CODE_LOCATION = "chaffee_assets"  # workspace.yaml's location_name: the UI finds re-executed runs by it
DEFINITIONS_MODULE = "chaffee_assets.definitions"
INGEST_JOB = "ingest_job"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
PARTITION_TAG = "dagster/partition"
BACKFILL_TAG = "dagster/backfill"
# The command prints its own progress; Dagster's per-event console log stays in the run's event log.
QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
# A daemon writes a heartbeat every 30 s; one older than this belongs to a daemon that has stopped.
DAEMON_HEARTBEAT_FRESH_S = 75.0
BACKFILL_PICKUP_TIMEOUT_S = 90.0
_DAEMONS_NEEDED = ("BACKFILL", "QUEUED_RUN_COORDINATOR")
_WATCHED_EVENTS = {
    dg.DagsterEventType.STEP_START,
    dg.DagsterEventType.STEP_SUCCESS,
    dg.DagsterEventType.STEP_FAILURE,
    dg.DagsterEventType.ASSET_MATERIALIZATION,
    dg.DagsterEventType.ASSET_CHECK_EVALUATION,
    dg.DagsterEventType.RUN_SUCCESS,
    dg.DagsterEventType.RUN_FAILURE,
}


@dataclass(frozen=True, order=True)
class DayRange:
    first: date
    last: date

    def __str__(self) -> str:
        return str(self.first) if self.first == self.last else f"{self.first}…{self.last}"

    @property
    def days(self) -> list[date]:
        return days_in(self.first, self.last)


# What one more run costs, in days a run covers: a run's fixed cost (creating it, its steps' events,
# resource set-up) measured 0.11-0.14 CPU-s, and each day of a range 0.008-0.010 (every asset
# records a materialisation per day, videos or not, one insert per step with the event batching the
# `chaffee` command sets): 12-15 days (bench/bench_run_cost.py, docs/retrieval.md). A gap of more
# than this many empty days is cheaper as a new run than carried inside one.
RUN_COST_IN_DAYS = 12


def group_days(days: Sequence[date], max_span_days: int = MAX_PARTITIONS_PER_RUN) -> list[DayRange]:
    """Cover the days with ranges of at most `max_span_days`, each starting and ending on a day
    with videos, at the least cost: every run costs `RUN_COST_IN_DAYS` plus the days it spans, so
    a long gap between uploads splits a range and a short one does not."""
    ordered = sorted(set(days))
    # cheapest[i]: the least cost covering ordered[:i]; start_of[i]: where its last range starts.
    cheapest = [0] * (len(ordered) + 1)
    start_of = [0] * (len(ordered) + 1)
    for end in range(1, len(ordered) + 1):
        best: tuple[int, int] | None = None
        for start in range(end - 1, -1, -1):
            span = (ordered[end - 1] - ordered[start]).days + 1
            if span > max_span_days:
                break
            cost = cheapest[start] + RUN_COST_IN_DAYS + span
            if best is None or cost <= best[0]:  # on a tie, the longer range: fewer runs
                best = (cost, start)
        cheapest[end], start_of[end] = best
    ranges: list[DayRange] = []
    end = len(ordered)
    while end > 0:
        start = start_of[end]
        ranges.append(DayRange(ordered[start], ordered[end - 1]))
        end = start
    return ranges[::-1]


def partitionable(days: Sequence[date]) -> tuple[list[date], list[date]]:
    """Split days into those the partition calendar has and those outside it."""
    keys = videos_daily_partition.get_partition_keys()
    first, last = date.fromisoformat(keys[0]), date.fromisoformat(keys[-1])
    inside = [d for d in days if first <= d <= last]
    outside = [d for d in days if not first <= d <= last]
    return inside, outside


def days_between(first: date | None, last: date | None, days: Sequence[date]) -> list[date]:
    return sorted(d for d in days if (first is None or d >= first) and (last is None or d <= last))


def run_range(tags: Mapping[str, str]) -> DayRange | None:
    """The days a run covers, from its partition tags."""
    if RANGE_START_TAG in tags and RANGE_END_TAG in tags:
        return DayRange(date.fromisoformat(tags[RANGE_START_TAG]), date.fromisoformat(tags[RANGE_END_TAG]))
    if PARTITION_TAG in tags:
        day = date.fromisoformat(tags[PARTITION_TAG])
        return DayRange(day, day)
    return None


class RunWatcher(Protocol):
    """Told about the runs as they go (the terminal's progress display)."""

    def run_started(self, run_id: str, day_range: DayRange) -> None: ...

    def event(self, run_id: str, event: dg.DagsterEvent) -> None: ...

    def run_finished(self, run_id: str, day_range: DayRange, ok: bool) -> None: ...


@dataclass
class RunOutcome:
    run_id: str
    day_range: DayRange
    ok: bool


@dataclass
class IngestReport:
    how: str = ""  # "in this process" or "backfill <id> through the daemon"
    runs: list[RunOutcome] = field(default_factory=list)
    skipped_days: list[date] = field(default_factory=list)  # before the partition calendar starts
    check_evaluations: list[dg.AssetCheckEvaluation] = field(default_factory=list)
    problem: str | None = None  # the backfill ended without completing (daemon error, cancelled)
    closed_runs: list[str] = field(default_factory=list)  # runs of killed commands, marked failed first

    @property
    def failed_checks(self) -> list[dg.AssetCheckEvaluation]:
        return [e for e in self.check_evaluations if not e.passed]

    @property
    def failed(self) -> list[DayRange]:
        return [r.day_range for r in self.runs if not r.ok]


def ingest_days(
    days: Sequence[date],
    *,
    instance: dg.DagsterInstance,
    run_config: Mapping | None = None,
    tags: Mapping[str, str] | None = None,
    max_span_days: int = MAX_PARTITIONS_PER_RUN,
    watcher: RunWatcher | None = None,
    use_daemon: bool = True,
) -> IngestReport:
    """Materialise `ingest_job` for the days: through the daemon when one runs, else in this process.

    A failed range does not stop the others. `run_config` goes to every run (resources, ops config).
    """
    if not 1 <= max_span_days <= MAX_PARTITIONS_PER_RUN:
        raise ValueError(
            f"a run covers 1 to {MAX_PARTITIONS_PER_RUN} days (the assets' backfill policy), not {max_span_days}"
        )
    inside, skipped = partitionable(days)
    ranges = group_days(inside, max_span_days)
    config = {**QUIET_CONSOLE, **(run_config or {})}
    report: IngestReport | None = None
    # Runs a killed command left open would otherwise stay STARTED and hold run slots for ever.
    closed = [run.run_id for run in close_dead_runs(instance)]
    with _code_location(instance) as repository:
        job = _IngestJob(repository)
        if ranges and use_daemon and daemon_running(instance):
            report = _through_backfill(instance, job, ranges, config, dict(tags or {}), watcher)
        if report is None:
            report = _in_process(instance, job, ranges, config, dict(tags or {}), watcher)
    report.skipped_days = skipped
    report.closed_runs = closed
    return report


def daemon_running(instance: dg.DagsterInstance) -> bool:
    """Whether the backfill and run-queue daemons have written a heartbeat lately."""
    heartbeats = instance.get_daemon_heartbeats()
    now = time.time()
    return all(
        name in heartbeats and now - heartbeats[name].timestamp < DAEMON_HEARTBEAT_FRESH_S
        for name in _DAEMONS_NEEDED
    )


@contextmanager
def _code_location(instance: dg.DagsterInstance):
    """The code location as the workspace names it, loaded in this process."""
    from dagster._core.remote_origin import InProcessCodeLocationOrigin
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

    origin = InProcessCodeLocationOrigin(
        loadable_target_origin=LoadableTargetOrigin(
            executable_path=sys.executable,
            module_name=DEFINITIONS_MODULE,
            working_directory=str(PROJECT_ROOT),
        ),
        location_name=CODE_LOCATION,
    )
    with origin.create_location(instance) as location:
        (repository,) = location.get_repositories().values()
        yield repository


class _IngestJob:
    """`ingest_job` three ways: as the workspace sees it (origins), as code (to execute), and its assets."""

    def __init__(self, repository) -> None:
        from dagster._utils.hosted_user_process import recon_job_from_origin

        self.repository = repository
        self.remote = repository.get_full_job(INGEST_JOB)
        self.reconstructable = recon_job_from_origin(self.remote.get_python_origin())
        self.definition = self.reconstructable.get_definition()
        self.asset_keys = sorted(self.definition.asset_layer.executable_asset_keys)


def _in_process(instance, job: _IngestJob, ranges, run_config, tags, watcher) -> IngestReport:
    from dagster._core.execution.api import execute_run_iterator

    # The instance's storages (dagster.yaml: chaffee_assets/dagster_storage.py) keep their
    # connections, so the runs' thousands of events do not each open one.
    report = IngestReport(how="in this process")
    for day_range in ranges:
        run = instance.create_run_for_job(
            job_def=job.definition,
            run_config=run_config,
            tags={
                **tags,
                **worker_tags(),
                RANGE_START_TAG: day_range.first.isoformat(),
                RANGE_END_TAG: day_range.last.isoformat(),
            },
            # With the code location's origin the UI finds the job this run belongs to, and can re-execute it.
            remote_job_origin=job.remote.get_remote_origin(),
            job_code_origin=job.remote.get_python_origin(),
        )
        if watcher:
            watcher.run_started(run.run_id, day_range)
        for event in execute_run_iterator(job.reconstructable, run, instance):
            if event.event_type in _WATCHED_EVENTS:
                _observe(report, watcher, run.run_id, event)
        finished = instance.get_run_by_id(run.run_id)
        ok = finished is not None and finished.status == dg.DagsterRunStatus.SUCCESS
        report.runs.append(RunOutcome(run.run_id, day_range, ok))
        if watcher:
            watcher.run_finished(run.run_id, day_range, ok)
    return report


def _through_backfill(instance, job: _IngestJob, ranges, run_config, tags, watcher) -> IngestReport | None:
    from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill
    from dagster._core.utils import make_new_backfill_id

    partition_keys = sorted({day.isoformat() for day_range in ranges for day in day_range.days})
    # A backfill of the job through its partition set, not of the assets: the daemon then names its
    # runs `ingest_job`, as the command's own and the schedule's are, where an asset backfill's runs
    # are `__ASSET_JOB`. The job's backfill policy still groups contiguous days, up to 31 a run.
    [partition_set] = [ps for ps in job.repository.get_partition_sets() if ps.job_name == INGEST_JOB]
    backfill = PartitionBackfill(
        backfill_id=make_new_backfill_id(),
        partition_set_origin=partition_set.get_remote_origin(),
        status=BulkActionStatus.REQUESTED,
        partition_names=partition_keys,
        from_failure=False,
        reexecution_steps=None,
        tags=tags,
        backfill_timestamp=time.time(),
        title=f"chaffee ingest {ranges[0].first} … {ranges[-1].last}",
        description=f"{len(partition_keys)} days in {len(ranges)} range(s) with videos",
        run_config=run_config,
    )
    instance.add_backfill(backfill)
    report = IngestReport(how=f"as backfill {backfill.backfill_id} through the Dagster daemon")
    follower = _BackfillFollower(instance, backfill.backfill_id, report, watcher)
    started = time.monotonic()
    while True:
        # The status first: every run the backfill made before it ended is then seen by the poll.
        current = instance.get_backfill(backfill.backfill_id)
        follower.poll()
        if current.status not in (
            BulkActionStatus.REQUESTED,
            BulkActionStatus.CANCELING,
            BulkActionStatus.FAILING,
        ):
            if follower.all_finished():
                if current.status not in (BulkActionStatus.COMPLETED_SUCCESS, BulkActionStatus.COMPLETED):
                    reason = f": {_first_line(current.error.message)}" if current.error else ""
                    report.problem = f"backfill {backfill.backfill_id} ended {current.status.value}{reason}"
                return report
        elif not follower.seen_any() and time.monotonic() - started > BACKFILL_PICKUP_TIMEOUT_S:
            instance.update_backfill(current.with_status(BulkActionStatus.CANCELED))
            return None
        time.sleep(1.0)


class _BackfillFollower:
    """Reads the events of a backfill's runs as the daemon launches and executes them."""

    def __init__(self, instance, backfill_id: str, report: IngestReport, watcher: RunWatcher | None) -> None:
        self._instance = instance
        self._backfill_id = backfill_id
        self._report = report
        self._watcher = watcher
        self._cursors: dict[str, str | None] = {}
        self._ranges: dict[str, DayRange] = {}
        self._done: set[str] = set()

    def seen_any(self) -> bool:
        return bool(self._cursors)

    def all_finished(self) -> bool:
        return self._done == set(self._cursors)

    def poll(self) -> None:
        from dagster._core.storage.dagster_run import RunsFilter

        runs = self._instance.get_runs(RunsFilter(tags={BACKFILL_TAG: self._backfill_id}))
        for run in sorted(runs, key=lambda r: r.tags.get(RANGE_START_TAG) or r.tags.get(PARTITION_TAG) or ""):
            if run.run_id in self._done:
                continue
            if run.run_id not in self._cursors:
                self._cursors[run.run_id] = None
                self._ranges[run.run_id] = run_range(run.tags) or DayRange(date.min, date.min)
                if self._watcher:
                    self._watcher.run_started(run.run_id, self._ranges[run.run_id])
            connection = self._instance.get_records_for_run(
                run.run_id, cursor=self._cursors[run.run_id], of_type=_WATCHED_EVENTS
            )
            for record in connection.records:
                event = record.event_log_entry.dagster_event
                if event is not None:
                    _observe(self._report, self._watcher, run.run_id, event)
            self._cursors[run.run_id] = connection.cursor
            if run.is_finished:
                ok = run.status == dg.DagsterRunStatus.SUCCESS
                self._done.add(run.run_id)
                self._report.runs.append(RunOutcome(run.run_id, self._ranges[run.run_id], ok))
                if self._watcher:
                    self._watcher.run_finished(run.run_id, self._ranges[run.run_id], ok)


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or ["no message"])[0]


def _observe(report: IngestReport, watcher: RunWatcher | None, run_id: str, event: dg.DagsterEvent) -> None:
    if event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
        report.check_evaluations.append(event.asset_check_evaluation_data)
    if watcher:
        watcher.event(run_id, event)


EMPTY_DAY_METADATA_KEY = "empty_day"
EMPTY_DAY_DESCRIPTION = "no video published this day ({source})"


def mark_empty_days(
    instance: dg.DagsterInstance,
    asset_keys: Sequence[dg.AssetKey],
    empty_days: Sequence[date],
    listed_by: str,
) -> int:
    """Record each of `empty_days` as materialised for every asset, without a run: a day the source
    lists no video on is done, so the UI's fill counts it and "missing" means a real gap.

    A day an asset already has a materialisation for (a run's, or an earlier mark) is left as it is.
    Marking the ~4,300 empty days since 2015 for the four assets is ~17,000 events, written in
    batches (defs/runless.py). Returns how many were written.
    """
    from chaffee_assets.defs.runless import record_runless_materializations

    written = 0
    for key in asset_keys:
        done = instance.get_materialized_partitions(key)
        todo = [day.isoformat() for day in empty_days if day.isoformat() not in done]
        written += record_runless_materializations(
            instance,
            key,
            todo,
            description=EMPTY_DAY_DESCRIPTION.format(source=listed_by),
            # Little metadata: serialising it is most of an event's cost.
            metadata={EMPTY_DAY_METADATA_KEY: True, "video_count": 0},
        )
    return written


def calendar_days(first: date | None, last: date | None) -> list[date]:
    """The partition calendar's days between `first` and `last` (None: its first or last day)."""
    keys = videos_daily_partition.get_partition_keys()
    start, end = date.fromisoformat(keys[0]), date.fromisoformat(keys[-1])
    return days_in(max(first or start, start), min(last or end, end))
