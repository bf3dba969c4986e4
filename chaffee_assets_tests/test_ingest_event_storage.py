"""How runs write their Dagster events: over a few kept connections to the instance's PostgreSQL
storage, not a new server connection per event (each one a server process started and ended, which
cost the embedded server most of its CPU during a whole-library ingest). Both ways runs execute:
in `chaffee ingest`'s own process, and in a run worker the daemon launches for a backfill, which
loads the instance from dagster.yaml and nothing else."""

from __future__ import annotations

import dagster as dg
import psycopg

from chaffee_assets.dagster_instance import project_instance
from chaffee_assets.dagster_storage import (
    KeptConnectionsEventLogStorage,
    KeptConnectionsRunStorage,
    KeptConnectionsScheduleStorage,
)

from .conftest import _fresh_database
from .dagster_instances import kept_connections_instance


def _connections_opened(url: str) -> int:
    """Connections to the database that have ended so far (the server counts a session at its end)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        return conn.execute(
            "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()[0]


DAYS = dg.DailyPartitionsDefinition(start_date="2024-01-01")


@dg.asset(partitions_def=DAYS, backfill_policy=dg.BackfillPolicy.single_run())
def days_of_videos(context) -> None:
    """A stand-in for the ingest's assets: one run materialises a range of days."""
    context.log.info(f"{len(context.partition_keys)} days")


def _connections_for_a_30_day_run(instance: dg.DagsterInstance, url: str, month: str) -> int:
    """Connections to `url` that a run over the 30 days of `month` ("2024-01") opened and closed,
    after a first, shorter run has opened whatever the instance keeps."""

    def run(last_day: int) -> None:
        tags = {
            "dagster/asset_partition_range_start": f"{month}-01",
            "dagster/asset_partition_range_end": f"{month}-{last_day:02d}",
        }
        assert dg.materialize([days_of_videos], instance=instance, tags=tags).success

    run(2)
    before = _connections_opened(url)
    run(30)
    return _connections_opened(url) - before - 1  # less the one that read the count


def test_a_run_over_many_days_writes_its_events_without_a_connection_each(embedded_admin_url, tmp_path):
    url = _fresh_database(embedded_admin_url, "dagster_events")
    instance = kept_connections_instance(url, tmp_path)
    opened = _connections_for_a_30_day_run(instance, url, "2024-01")
    # 30 days: 60 asset events (planned and done), each of which used to open a connection.
    assert opened <= 5, f"{opened} connections opened for a run of 30 days"
    records = instance.fetch_materializations(days_of_videos.key, limit=100).records
    assert {r.partition_key for r in records} == {f"2024-01-{d:02d}" for d in range(1, 31)}
    instance.dispose()


def test_the_project_instance_keeps_its_connections_in_any_process(chaffee_home, monkeypatch):
    """A run worker loads the instance from dagster.yaml and calls nothing of chaffee's: the
    storages dagster.yaml names keep their connections by themselves."""
    for key in ("DAGSTER_HOME", "CHAFFEE_DAGSTER_PG_URL", "DATABASE_URL"):
        monkeypatch.delenv(key, raising=False)
    instance = project_instance()
    try:
        assert isinstance(instance.event_log_storage, KeptConnectionsEventLogStorage)
        assert isinstance(instance.run_storage, KeptConnectionsRunStorage)
        assert isinstance(instance.schedule_storage, KeptConnectionsScheduleStorage)
        url = instance.event_log_storage.postgres_url.replace("postgresql+psycopg2://", "postgresql://")
        opened = _connections_for_a_30_day_run(instance, url, "2024-03")
        # With dagster-postgres's own storages this run opened 47.
        assert opened <= 5, f"{opened} connections opened for a run of 30 days"
    finally:
        instance.dispose()


def test_the_asset_table_s_columns_are_read_from_the_catalog_once_per_process(
    embedded_admin_url, tmp_path, monkeypatch
):
    """Every step reads asset records (its upstream assets' data versions), and each read asked the
    catalog for the asset table's columns: a reflection query per step, answered the same way."""
    from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage

    asked: list[str] = []
    reflect = SqlEventLogStorage._has_asset_key_col_on_connection

    def counting(self, conn, column_name):
        asked.append(column_name)
        return reflect(self, conn, column_name)

    monkeypatch.setattr(SqlEventLogStorage, "_has_asset_key_col_on_connection", counting)
    instance = kept_connections_instance(_fresh_database(embedded_admin_url, "dagster_columns"), tmp_path)
    try:
        _connections_for_a_30_day_run(
            instance,
            instance.event_log_storage.postgres_url.replace("postgresql+psycopg2://", "postgresql://"),
            "2024-05",
        )
        for _ in range(3):
            assert instance.get_asset_records([days_of_videos.key])
        assert asked, "the storage never asked about the asset table's columns"
        assert len(asked) == len(set(asked)), f"asked again: {asked}"
    finally:
        instance.dispose()
