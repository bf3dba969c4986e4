"""Materialising the asset graph for the days that have videos, through Dagster, from a script.

`chaffee ingest` and `chaffee demo` use this: runs are recorded in the project's Dagster instance, so
they show up in the UI like any backfill. Days are grouped into ranges, one run per range, the way a
backfill with the assets' backfill policy groups them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date

import dagster as dg

from chaffee_assets.defs.partitions import videos_daily_partition

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
# The command prints its own progress; Dagster's per-event console log stays in the run's event log.
QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@dataclass(frozen=True)
class DayRange:
    first: date
    last: date

    def __str__(self) -> str:
        return str(self.first) if self.first == self.last else f"{self.first}…{self.last}"


def group_days(days: Sequence[date], max_span_days: int) -> list[DayRange]:
    """Cover the days with ranges no longer than `max_span_days`, each starting on a day with videos.

    Empty days inside a range cost nothing (they are materialised as empty), while every extra run
    costs seconds of start-up, so ranges are as long as allowed.
    """
    ranges: list[DayRange] = []
    for day in sorted(set(days)):
        if ranges and (day - ranges[-1].first).days < max_span_days:
            ranges[-1] = DayRange(ranges[-1].first, day)
        else:
            ranges.append(DayRange(day, day))
    return ranges


@dataclass
class IngestReport:
    runs: list[tuple[DayRange, bool]] = field(default_factory=list)
    skipped_days: list[date] = field(default_factory=list)  # before the partition calendar starts
    check_evaluations: list[dg.AssetCheckEvaluation] = field(default_factory=list)

    @property
    def failed_checks(self) -> list[dg.AssetCheckEvaluation]:
        return [e for e in self.check_evaluations if not e.passed]

    @property
    def failed(self) -> list[DayRange]:
        return [r for r, ok in self.runs if not ok]


def partitionable(days: Sequence[date]) -> tuple[list[date], list[date]]:
    """Split days into those the partition calendar has and those outside it."""
    keys = videos_daily_partition.get_partition_keys()
    first, last = date.fromisoformat(keys[0]), date.fromisoformat(keys[-1])
    inside = [d for d in days if first <= d <= last]
    outside = [d for d in days if not first <= d <= last]
    return inside, outside


def materialize_days(
    assets: Sequence[dg.AssetsDefinition | dg.AssetChecksDefinition],
    resources: dict[str, object],
    days: Sequence[date],
    *,
    instance: dg.DagsterInstance,
    max_span_days: int = 366,
    run_config: dict | None = None,
    tags: dict[str, str] | None = None,
    on_progress: Callable[[int, int, DayRange, bool], None] | None = None,
) -> IngestReport:
    """One in-process Dagster run per range of days; a failed range does not stop the others."""
    report = IngestReport()
    inside, report.skipped_days = partitionable(days)
    ranges = group_days(inside, max_span_days)
    for index, day_range in enumerate(ranges, start=1):
        result = dg.materialize(
            assets,
            resources=resources,
            instance=instance,
            run_config={**QUIET_CONSOLE, **(run_config or {})},
            tags={
                **(tags or {}),
                RANGE_START_TAG: day_range.first.isoformat(),
                RANGE_END_TAG: day_range.last.isoformat(),
            },
            raise_on_error=False,
        )
        report.runs.append((day_range, result.success))
        report.check_evaluations.extend(result.get_asset_check_evaluations())
        if on_progress:
            on_progress(index, len(ranges), day_range, result.success)
    return report


def days_between(first: date | None, last: date | None, days: Sequence[date]) -> list[date]:
    return sorted(d for d in days if (first is None or d >= first) and (last is None or d <= last))
