"""The shape of the code location as plain data: what `test_definitions_snapshot.py` compares.

Run as a module to print it (`python -m chaffee_assets_tests.definitions_snapshot`); the test runs it in
a fresh process with no CHAFFEE_* variables, so the snapshot shows the defaults.
"""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import yaml


def describe(defs: dg.Definitions) -> dict:
    from chaffee_assets.defs.pools import POOL_LIMITS

    graph = defs.resolve_asset_graph()
    assets = {}
    for assets_def in defs.assets or []:
        key = assets_def.key
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "deps": sorted(parent.to_user_string() for parent in node.parent_keys),
            "partitions": str(node.partitions_def),
            "backfill_policy": str(node.backfill_policy),
            "pool": assets_def.op.pool,
            "kinds": sorted(node.kinds),
            "retry_policy": repr(assets_def.op.retry_policy) if assets_def.op.retry_policy else None,
            "checks": {
                spec.name: {"blocking": spec.blocking, "per_day": spec.partitions_def is not None}
                for spec in assets_def.check_specs
            },
        }
    jobs = {}
    for job in defs.jobs or []:
        resolved = defs.resolve_job_def(job.name)
        jobs[job.name] = {
            "assets": sorted(k.to_user_string() for k in resolved.asset_layer.executable_asset_keys),
            "executor": resolved.executor_def.name,
        }
    schedules = {
        s.name: {
            "job": s.job_name,
            "cron": s.cron_schedule,
            "timezone": s.execution_timezone,
            "default_status": s.default_status.value,
        }
        for s in (defs.resolve_schedule_def(s.name) for s in defs.schedules or [])
    }
    sensors = {
        s.name: {
            # An alert sensor requests no run: it has no job.
            "job": s.job_name if s.targets else None,
            "minimum_interval_seconds": s.minimum_interval_seconds,
            "default_status": s.default_status.value,
        }
        for s in (defs.resolve_sensor_def(s.name) for s in defs.sensors or [])
    }
    root = Path(__file__).resolve().parent.parent
    workspace = yaml.safe_load((root / "workspace.yaml").read_text())
    return {
        "code_location": [entry["python_module"] for entry in workspace["load_from"]],
        "assets": assets,
        "jobs": jobs,
        "schedules": schedules,
        "sensors": sensors,
        "resources": sorted(defs.resources or {}),
        "pools": POOL_LIMITS,
    }


if __name__ == "__main__":
    from chaffee_assets.definitions import defs

    print(json.dumps(describe(defs), indent=2, sort_keys=True))
