"""The instance's storages: dagster-postgres's, keeping their connections in every process.

dagster-postgres opens a new server connection for every statement a storage runs, unless the
process says it is long-lived (`optimize_for_webserver`, which only the UI's server calls). The
daemon's loops and every run worker it launches for a backfill run that way, and the event log
opens one more per asset event, to ask the catalog whether `asset_event_tags` exists. These
storages keep one connection in every process that loads the instance, open more only while that
one is in use, and the event log remembers which tables exist. A backfill of 40 videos (34 runs)
through `chaffee dev`'s daemon opened 10 839 connections to Dagster's database before, 777 with
them. `dagster.yaml` names them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dagster._serdes import ConfigurableClassData
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage
from dagster_postgres.utils import get_token_provider_from_config, pg_url_from_config

# A connection unused this long is replaced on its next checkout (the server or a proxy between
# may have dropped it); the same figure the UI's server uses.
POOL_RECYCLE_S = 3600
# Connections opened beyond the kept one while it is in use, and closed when returned. The daemon
# runs its schedule, sensor, backfill and run-queue loops as threads over one instance: with too few,
# a thread would wait for another's connection instead of opening its own.
POOL_OVERFLOW = 10


class _KeptConnections:
    """Mixed into a dagster-postgres storage: its engine keeps a connection from the start."""

    def __init__(
        self,
        postgres_url: str,
        should_autocreate_tables: bool = True,
        inst_data: ConfigurableClassData | None = None,
        token_provider=None,
    ) -> None:
        super().__init__(postgres_url, should_autocreate_tables, inst_data, token_provider)
        # No statement timeout: a run's writes wait as long as they must, as with the default engine.
        self.optimize_for_webserver(
            statement_timeout=0, pool_recycle=POOL_RECYCLE_S, max_overflow=POOL_OVERFLOW
        )

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]):
        return cls(
            inst_data=inst_data,
            postgres_url=pg_url_from_config(config_value),
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),
            token_provider=get_token_provider_from_config(config_value),
        )


class KeptConnectionsRunStorage(_KeptConnections, PostgresRunStorage):
    pass


class KeptConnectionsScheduleStorage(_KeptConnections, PostgresScheduleStorage):
    pass


class KeptConnectionsEventLogStorage(_KeptConnections, PostgresEventLogStorage):
    """Remembers what the schema has: a table or a column of the asset table that exists keeps
    existing while the process runs (migrations only add them), so only a missing one is asked
    about again. (dagster-postgres remembers finished data migrations itself.)"""

    def __init__(self, *args, **kwargs) -> None:
        self._existing_tables: set[str] = set()
        self._existing_asset_key_cols: set[str] = set()
        super().__init__(*args, **kwargs)

    def has_table(self, table_name: str) -> bool:
        """Asked for every asset event."""
        if table_name not in self._existing_tables and super().has_table(table_name):
            self._existing_tables.add(table_name)
        return table_name in self._existing_tables

    def has_asset_key_col(self, column_name: str) -> bool:
        """Asked, by reading the table's columns from the catalog, whenever asset records are read:
        by every step, for its upstream assets' data versions."""
        if column_name not in self._existing_asset_key_cols and super().has_asset_key_col(column_name):
            self._existing_asset_key_cols.add(column_name)
        return column_name in self._existing_asset_key_cols
