"""The code location loads quietly and dagster.yaml yields a PostgreSQL-backed instance (`chaffee dev`
itself is exercised in test_readme_commands.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg


def test_definitions_load_and_validate():
    from chaffee_assets.definitions import defs

    dg.Definitions.validate_loadable(defs)
    assert defs.resolve_asset_graph().get_all_asset_keys()


def test_dagster_yaml_yields_a_postgres_instance_on_the_embedded_server(chaffee_home: Path, monkeypatch):
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

    from chaffee_assets.dagster_instance import project_instance
    from chaffee_assets.defs.pools import GPU_POOL

    for key in ("DAGSTER_HOME", "CHAFFEE_DAGSTER_PG_URL", "CHAFFEE_DAGSTER_ARTIFACTS_DIR",
                "CHAFFEE_DAGSTER_COMPUTE_LOGS_DIR", "DATABASE_URL"):  # fmt: skip
        monkeypatch.delenv(key, raising=False)
    instance = project_instance()
    try:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        assert "/dagster?" in os.environ["CHAFFEE_DAGSTER_PG_URL"]  # its own database
        assert str(chaffee_home) in os.environ["CHAFFEE_DAGSTER_PG_URL"]  # on the embedded server
        assert instance.event_log_storage.get_concurrency_info(GPU_POOL).slot_count == 1
        assert instance.run_retries_enabled
    finally:
        instance.dispose()


def test_the_code_location_loads_without_warnings():
    # Every Dagster process (webserver, daemon, code server, each run) imports the definitions: a
    # warning here is printed dozens of times by `chaffee dev`.
    result = subprocess.run(
        [sys.executable, "-W", "default", "-c", "import chaffee_assets.definitions"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
