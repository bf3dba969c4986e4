"""Materialisations recorded without a run: days the pipeline knows are done without running them
(a day without videos, a day that arrived with a restored warehouse), so the Dagster UI's fill and
its "missing" list mean what they say and a backfill of missing days does not run them again."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg

# Events per insert into the event log: one statement and one transaction each, where reporting
# them one at a time (`report_runless_asset_event`) costs a transaction per event, ~40x slower.
BATCH_SIZE = 500


def record_runless_materializations(
    instance: dg.DagsterInstance,
    key: dg.AssetKey,
    partitions: Sequence[str],
    *,
    metadata: Mapping[str, Any],
    description: str | None = None,
) -> int:
    """Record `key` as materialised for each of `partitions`, without a run, in batches of BATCH_SIZE.

    The caller leaves out partitions that are already materialised. One asset per call: each batch
    holds one asset's events, so the event log keeps that asset's latest materialisation right.
    Returns how many were recorded.
    """
    from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData
    from dagster._core.events.log import EventLogEntry
    from dagster._core.instance.utils import RUNLESS_JOB_NAME, RUNLESS_RUN_ID

    for first in range(0, len(partitions), BATCH_SIZE):
        now = time.time()
        entries = [
            EventLogEntry(
                error_info=None,
                level=logging.INFO,
                user_message="",
                run_id=RUNLESS_RUN_ID,
                timestamp=now,
                step_key=None,
                job_name=RUNLESS_JOB_NAME,
                dagster_event=DagsterEvent(
                    event_type_value=DagsterEventType.ASSET_MATERIALIZATION.value,
                    event_specific_data=StepMaterializationData(
                        dg.AssetMaterialization(
                            asset_key=key, partition=partition, description=description, metadata=metadata
                        )
                    ),
                    job_name=RUNLESS_JOB_NAME,
                ),
            )
            for partition in partitions[first : first + BATCH_SIZE]
        ]
        instance.event_log_storage.store_event_batch(entries)
    return len(partitions)
