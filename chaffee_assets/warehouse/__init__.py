"""The PostgreSQL + pgvector warehouse: which server, its schema migrations, and connections."""

from chaffee_assets.warehouse.server import WarehouseError, connect, dagster_storage_url, warehouse_url

__all__ = ["WarehouseError", "connect", "dagster_storage_url", "warehouse_url"]
