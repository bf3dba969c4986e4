"""The environment the top-level dagster.yaml needs, and the Dagster instance it describes."""

from __future__ import annotations

import os

from chaffee_assets.settings import PROJECT_ROOT, chaffee_home
from chaffee_assets.warehouse.server import dagster_storage_url, warehouse_url

GPU_POOL = "gpu"
GPU_POOL_LIMIT = 1


def dagster_environment() -> dict[str, str]:
    """Variables for `dagster dev`, the daemon and run workers: where the instance lives and stores."""
    home = chaffee_home()
    return {
        "DAGSTER_HOME": str(PROJECT_ROOT),
        "CHAFFEE_HOME": str(home),
        "DATABASE_URL": warehouse_url(),
        "CHAFFEE_DAGSTER_PG_URL": sqlalchemy_psycopg2_url(dagster_storage_url()),
        "CHAFFEE_DAGSTER_ARTIFACTS_DIR": str(home / "dagster"),
        "CHAFFEE_DAGSTER_COMPUTE_LOGS_DIR": str(home / "dagster" / "compute_logs"),
    }


def sqlalchemy_psycopg2_url(url: str) -> str:
    """The URL with SQLAlchemy's psycopg2 driver named: dagster-postgres speaks psycopg2, while
    SQLAlchemy 2.1 picks psycopg 3 for a bare `postgresql://` (and its NOTIFY then fails)."""
    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme):
            return "postgresql+psycopg2://" + url[len(scheme) :]
    return url


def apply_dagster_environment() -> dict[str, str]:
    env = dagster_environment()
    os.environ.update(env)
    return env


def project_instance():
    """The persistent Dagster instance described by dagster.yaml (on the PostgreSQL storage)."""
    from dagster import DagsterInstance

    apply_dagster_environment()
    instance = DagsterInstance.from_config(str(PROJECT_ROOT))
    set_gpu_pool_limit(instance)
    return instance


def set_gpu_pool_limit(instance) -> None:
    """At most one step holds the GPU at a time, whatever the pool default says."""
    instance.event_log_storage.set_concurrency_slots(GPU_POOL, GPU_POOL_LIMIT)
