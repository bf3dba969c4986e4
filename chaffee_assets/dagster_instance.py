"""The Dagster instance: its home under CHAFFEE_HOME, the environment its dagster.yaml needs, and the
instance itself.

`dagster.yaml` at the repository root is the documented, versioned configuration. Dagster writes into
its home (`DAGSTER_HOME`: the UI's first-visit state in `.nux/`, telemetry ids, local artifacts), so the
home is `$CHAFFEE_HOME/dagster/` and the root file is copied there whenever it changed: the checkout
stays clean, every runtime file lives under CHAFFEE_HOME, and editing the root file is how the
instance is configured. A copy rather than a link, so the home survives the checkout moving and
reads the same on every platform.
"""

from __future__ import annotations

import os
from pathlib import Path

from chaffee_assets.defs.pools import POOL_LIMITS
from chaffee_assets.settings import PROJECT_ROOT, chaffee_home
from chaffee_assets.warehouse.server import dagster_storage_url, warehouse_url

DAGSTER_YAML = PROJECT_ROOT / "dagster.yaml"
_COPY_HEADER = "# Copied by chaffee from {source}: edit that file, not this copy (it is replaced when that one changes).\n"


def dagster_home() -> Path:
    """DAGSTER_HOME: `$CHAFFEE_HOME/dagster`, holding a current copy of the repository's dagster.yaml."""
    home = chaffee_home() / "dagster"
    home.mkdir(parents=True, exist_ok=True)
    wanted = _COPY_HEADER.format(source=DAGSTER_YAML) + DAGSTER_YAML.read_text(encoding="utf-8")
    target = home / "dagster.yaml"
    if not target.exists() or target.read_text(encoding="utf-8") != wanted:
        scratch = target.with_suffix(".yaml.tmp")
        scratch.write_text(wanted, encoding="utf-8")
        scratch.replace(target)  # atomic: a process starting meanwhile never reads half a file
    return home


def dagster_environment() -> dict[str, str]:
    """Variables for `dagster dev`, the daemon and run workers: where the instance lives and stores."""
    home = dagster_home()
    return {
        "DAGSTER_HOME": str(home),
        "CHAFFEE_HOME": str(chaffee_home()),
        "DATABASE_URL": warehouse_url(),
        "CHAFFEE_DAGSTER_PG_URL": sqlalchemy_psycopg2_url(dagster_storage_url()),
        "CHAFFEE_DAGSTER_ARTIFACTS_DIR": str(home),
        "CHAFFEE_DAGSTER_COMPUTE_LOGS_DIR": str(home / "compute_logs"),
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

    env = apply_dagster_environment()
    instance = DagsterInstance.from_config(env["DAGSTER_HOME"])
    set_pool_limits(instance)
    return instance


def set_pool_limits(instance) -> None:
    """At most one step holds the GPU at a time, whatever the pool default in dagster.yaml says."""
    for pool, limit in POOL_LIMITS.items():
        instance.event_log_storage.set_concurrency_slots(pool, limit)
