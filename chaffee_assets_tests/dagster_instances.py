"""Dagster instances for tests that run many partitions: PostgreSQL storage as the project's dagster.yaml has it."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from chaffee_assets.dagster_instance import sqlalchemy_psycopg2_url

STORAGES = {
    "run_storage": "KeptConnectionsRunStorage",
    "event_log_storage": "KeptConnectionsEventLogStorage",
    "schedule_storage": "KeptConnectionsScheduleStorage",
}


def kept_connections_instance(url: str, home: Path) -> dg.DagsterInstance:
    """An instance on its own database, with the storages the project's dagster.yaml names.

    `dg.instance_for_test()`'s SQLite storage opens and commits a connection per event: over a whole
    library's runs (thousands of planned and materialised events) that costs minutes."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(
        "".join(
            f"{key}:\n  module: chaffee_assets.dagster_storage\n  class: {name}\n"
            f'  config:\n    postgres_url: "{sqlalchemy_psycopg2_url(url)}"\n'
            for key, name in STORAGES.items()
        ),
        encoding="utf-8",
    )
    return dg.DagsterInstance.from_config(str(home))
