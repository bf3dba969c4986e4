"""Per-day figures for runs that cover several days: each partition gets its own metadata and check results.

A backfill groups up to 31 days in one run (the assets' backfill policy) and Dagster records one
materialisation per day of the run. Metadata returned with the result would be copied onto every one
of those days, so a day without videos would show the run's totals. Instead each asset reports the
figures of each day with `add_asset_metadata(partition_key=…)`, and yields one check evaluation per day
(the checks are partitioned like the assets), so the UI shows every day its own counts and verdicts.

A day without videos has nothing to check, so its checks are not evaluated (the UI shows them as
skipped for that day) rather than passing on nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import date
from typing import Any

import dagster as dg
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)
from dagster._core.storage.event_log.base import AssetRecordsFilter


def run_days(context: dg.AssetExecutionContext) -> list[date]:
    """The days (partitions) this run materialises, oldest first."""
    return [date.fromisoformat(key) for key in context.partition_keys]


def describe_days(days: list[date]) -> str:
    """'2024-02-12' or '2024-02-01 … 2024-03-02 (31 days)', for run-wide metadata."""
    if len(days) == 1:
        return days[0].isoformat()
    return f"{days[0]} … {days[-1]} ({len(days)} days)"


def report_day_metadata(
    context: dg.AssetExecutionContext, metadata_by_day: Mapping[date, Mapping[str, Any]]
) -> None:
    """Attach each day's own metadata to that day's materialisation."""
    for day, metadata in metadata_by_day.items():
        context.add_asset_metadata(dict(metadata), partition_key=day.isoformat())


def check_evaluations(
    context: dg.AssetExecutionContext,
    results_by_day: Mapping[date, Iterable[dg.AssetCheckResult]],
    run_wide: Iterable[dg.AssetCheckResult] = (),
) -> Iterator[dg.AssetCheckEvaluation | dg.Output]:
    """One evaluation per check and day (`run_wide` results belong to no day), then the checks' outputs.

    Yield these after the asset's `MaterializeResult`, so each evaluation points at the materialisation
    of its day. A failed blocking check still fails the step (Dagster raises after the evaluations), so
    downstream assets of the run do not run on a bad day. A check with no result for a day is not
    evaluated there: the UI shows it as skipped for that day. Every selected check's output is
    yielded, evaluated or not, since Dagster requires each output of the step.
    """
    selected = context.selected_asset_check_keys
    targets = _latest_materializations(context, list(results_by_day))
    entries = [(day, result) for day, results in results_by_day.items() for result in results]
    entries += [(None, result) for result in run_wide]
    for day, result in entries:
        key = dg.AssetCheckKey(context.asset_key, result.check_name)
        if key not in selected:
            continue
        spec = context.assets_def.get_spec_for_check_key(key)
        yield dg.AssetCheckEvaluation(
            asset_key=context.asset_key,
            check_name=result.check_name,
            passed=result.passed,
            metadata=result.metadata,
            target_materialization_data=targets.get(day) if day else None,
            severity=result.severity,
            description=result.description,
            blocking=spec.blocking,
            partition=day.isoformat() if day else None,
        )
    for key in sorted((k for k in selected if k.asset_key == context.asset_key), key=lambda k: k.name):
        yield dg.Output(None, output_name=context.assets_def.get_output_name_for_asset_check_key(key))


def _latest_materializations(
    context: dg.AssetExecutionContext, days: list[date]
) -> dict[date, AssetCheckEvaluationTargetMaterializationData]:
    """The materialisation each day's check result is about: the newest of that day (this run's)."""
    if not days:
        return {}
    records = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=context.asset_key, asset_partitions=[d.isoformat() for d in days]),
        limit=len(days) * 2,
    ).records
    latest: dict[date, AssetCheckEvaluationTargetMaterializationData] = {}
    for record in records:  # newest first
        partition = record.partition_key
        if partition is None:
            continue
        day = date.fromisoformat(partition)
        if day not in latest:
            latest[day] = AssetCheckEvaluationTargetMaterializationData(
                storage_id=record.storage_id, run_id=record.run_id, timestamp=record.timestamp
            )
    return latest
