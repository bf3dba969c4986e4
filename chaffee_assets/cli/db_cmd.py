"""`chaffee db …`: the warehouse's server, schema version and contents."""

from __future__ import annotations

import argparse
import shlex

TABLES = (
    "videos",
    "channel_listing",
    "transcripts",
    "transcript_attempts",
    "segments",
    "segment_embeddings",
    "asr_spend",
)


def register(subparsers: argparse._SubParsersAction) -> None:
    db = subparsers.add_parser("db", help="manage the warehouse database", description=__doc__)
    db_sub = db.add_subparsers(dest="db_command", metavar="DB_COMMAND", required=True)

    upgrade = db_sub.add_parser("upgrade", help="apply pending schema migrations (safe to repeat)")
    upgrade.set_defaults(handler=_upgrade)

    status = db_sub.add_parser("status", help="server, version, applied migrations and row counts")
    status.set_defaults(handler=_status)

    url = db_sub.add_parser("url", help="print the warehouse connection URL (starts the embedded server)")
    url.add_argument("--dagster", action="store_true", help="print the Dagster instance storage URL instead")
    url.set_defaults(handler=_url)

    env = db_sub.add_parser(
        "env", help='print shell exports for running dagster yourself: eval "$(chaffee db env)"'
    )
    env.set_defaults(handler=_env)

    stop = db_sub.add_parser("stop", help="stop the embedded PostgreSQL server (no effect with DATABASE_URL)")
    stop.set_defaults(handler=_stop)


def _upgrade(args: argparse.Namespace) -> int:
    from chaffee_assets.warehouse.migrate import upgrade_and_define
    from chaffee_assets.warehouse.server import redact, warehouse_url

    url = warehouse_url()
    applied, defined = upgrade_and_define(url)
    for migration in applied:
        print(f"applied {migration.path.name}")
    for definition in defined:
        print(f"defined {definition.path.name}")
    if not applied and not defined:
        print("schema is up to date")
    print(f"warehouse: {redact(url)}")
    return 0


def _status(args: argparse.Namespace) -> int:
    from chaffee_assets.warehouse.migrate import (
        applied_definitions,
        available_definitions,
        available_migrations,
    )
    from chaffee_assets.warehouse.server import connect, redact, uses_embedded_server, warehouse_url

    url = warehouse_url()
    with connect(url) as conn:
        server_version = conn.execute("SHOW server_version").fetchone()[0]
        vector = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
        has_migrations = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()[0]
        applied = (
            conn.execute(
                "SELECT version, checksum, applied_at FROM schema_migrations ORDER BY version"
            ).fetchall()
            if has_migrations
            else []
        )
        print(
            f"server:     PostgreSQL {server_version} ({'embedded' if uses_embedded_server() else 'DATABASE_URL'})"
        )
        print(f"url:        {redact(url)}")
        print(f"memory:     {_buffer_memory(conn)}")
        print(
            f"pgvector:   {vector[0] if vector else 'not installed in this database (run: chaffee db upgrade)'}"
        )
        checksums = {row[0]: row[1] for row in applied}
        # One name column for migrations and definitions, as wide as the longest name.
        names = [m.path.name for m in available_migrations()] + [d.path.name for d in available_definitions()]
        width = max(map(len, names), default=0)
        print("migrations:")
        for migration in available_migrations():
            if migration.version not in checksums:
                mark = "PENDING"
            elif checksums[migration.version] != migration.checksum:
                mark = "CHANGED since it was applied (ship schema changes as a new numbered file)"
            else:
                mark = "applied"
            print(f"  {migration.path.name:<{width}}  {mark}")
        recorded = applied_definitions(conn)
        print("definitions:")
        for definition in available_definitions():
            if definition.name not in recorded:
                mark = "PENDING"
            elif recorded[definition.name] != definition.checksum:
                mark = "changed: applied at the next upgrade"
            else:
                mark = "applied"
            print(f"  {definition.path.name:<{width}}  {mark}")
        if applied:
            print("rows:")
            for table in TABLES:
                exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()[0]
                if exists:
                    count = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608 - fixed names
                    print(f"  {table:<22} {count:>10,}")
    return 0


def _buffer_memory(conn) -> str:
    """The server's shared_buffers, and, for the embedded server, whether it runs what is configured."""
    from chaffee_assets.warehouse.server import embedded_server_settings, uses_embedded_server

    (running,) = conn.execute("SHOW shared_buffers").fetchone()
    line = f"shared_buffers {running}"
    if uses_embedded_server():
        configured = embedded_server_settings()["shared_buffers"]
        same = conn.execute(
            "SELECT pg_size_bytes(%s) = pg_size_bytes(current_setting('shared_buffers'))", (configured,)
        ).fetchone()[0]
        if not same:
            line += f" (configured {configured}: applies when the server next starts; chaffee db stop)"
    return line


def _url(args: argparse.Namespace) -> int:
    from chaffee_assets.warehouse.server import dagster_storage_url, warehouse_url

    print(dagster_storage_url() if args.dagster else warehouse_url())
    return 0


def _env(args: argparse.Namespace) -> int:
    from chaffee_assets.dagster_instance import dagster_environment

    for key, value in dagster_environment().items():
        print(f"export {key}={shlex.quote(value)}")
    return 0


def _stop(args: argparse.Namespace) -> int:
    from chaffee_assets.warehouse.server import stop_embedded_server

    print("embedded server stopped" if stop_embedded_server() else "no embedded server to stop")
    return 0
