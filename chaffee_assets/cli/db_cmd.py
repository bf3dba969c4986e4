"""`chaffee db …`: the warehouse's server, schema version and contents."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

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

    dump = db_sub.add_parser(
        "dump",
        help="write the whole warehouse into one file (to move or back it up)",
        description="Write every table the warehouse holds, its migration history and a sample to verify "
        "against into FILE (docs/moving.md).",
    )
    dump.add_argument(
        "file", type=Path, metavar="FILE", help="the dump file to write (replaced when complete)"
    )
    dump.set_defaults(handler=_dump)

    restore = db_sub.add_parser(
        "restore",
        help="load a dump into the warehouse DATABASE_URL names, verify it, and tell Dagster",
        description="Load FILE into the warehouse DATABASE_URL names (the embedded one when unset) in one "
        "transaction, verify counts, vectors and searches, then record the days it holds as materialised "
        "in the Dagster instance (docs/moving.md).",
    )
    restore.add_argument("file", type=Path, metavar="FILE", help="a file written by chaffee db dump")
    restore.add_argument(
        "--replace", action="store_true", help="replace a warehouse that already holds videos"
    )
    restore.add_argument(
        "--no-dagster",
        action="store_true",
        help="do not record the restored days in the Dagster instance (chaffee db report-dagster does it later)",
    )
    restore.add_argument(
        "--maintenance-work-mem",
        default="1GB",
        help="memory for building the indexes after the rows (PostgreSQL's maintenance_work_mem; default 1GB)",
    )
    restore.set_defaults(handler=_restore)

    report = db_sub.add_parser(
        "report-dagster",
        help="record the days the warehouse holds as materialised in the Dagster instance",
    )
    report.set_defaults(handler=_report_dagster)


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


def _dump(args: argparse.Namespace) -> int:
    from chaffee_assets.warehouse.server import redact, warehouse_url
    from chaffee_assets.warehouse.transfer import dump

    url = warehouse_url()
    report = dump(args.file, url, progress=print)
    rows = sum(report.tables.values())
    print(
        f"wrote {report.path}: {len(report.tables)} tables, {rows:,} rows, {report.bytes / 2**20:,.1f} MiB "
        f"in {report.seconds:.1f} s (from {redact(url)})"
    )
    return 0


def _restore(args: argparse.Namespace) -> int:
    from chaffee_assets.warehouse.server import redact, warehouse_url
    from chaffee_assets.warehouse.transfer import restore

    url = warehouse_url()
    print(f"restoring {args.file} into {redact(url)} (one transaction)")
    report = restore(
        args.file, url, replace=args.replace, maintenance_work_mem=args.maintenance_work_mem, progress=print
    )
    if report.replaced_videos:
        print(f"replaced a warehouse of {report.replaced_videos:,} videos")
    for migration in report.migrations_after:
        print(f"applied {migration} (newer than the dump)")
    searches = (
        f"{report.searches_compared} searches' top hits the same"
        if report.searches_skipped is None
        else f"searches not compared: {report.searches_skipped}"
    )
    print(
        f"verified: {len(report.tables) + len(report.derived)} tables' row counts, "
        f"{report.vectors_compared} vectors bit for bit, {searches}"
    )
    print(f"restored in {report.seconds:.1f} s")
    if args.no_dagster:
        print("Dagster not told (--no-dagster): run chaffee db report-dagster before any backfill")
        return 0
    try:
        _tell_dagster(url, source=str(args.file))
    except Exception as exc:
        from chaffee_assets.error_text import one_line

        raise RuntimeError(
            f"the warehouse is restored and verified, but recording its days in Dagster failed ({one_line(exc)}); "
            "fix that, then run: chaffee db report-dagster"
        ) from exc
    return 0


def _report_dagster(args: argparse.Namespace) -> int:
    from chaffee_assets.warehouse.server import warehouse_url

    _tell_dagster(warehouse_url())
    return 0


def _tell_dagster(url: str, source: str = "") -> None:
    from chaffee_assets.dagster_instance import project_instance
    from chaffee_assets.moved_partitions import report_held_partitions
    from chaffee_assets.retrieval.embedder import canonical_model_name
    from chaffee_assets.search import configured_model
    from chaffee_assets.warehouse.server import connect, redact

    instance = project_instance()
    with connect(url) as conn:
        results = report_held_partitions(
            instance, conn, model=canonical_model_name(configured_model()), source=source
        )
    storage = (
        redact(instance.event_log_storage.postgres_url)
        if hasattr(instance.event_log_storage, "postgres_url")
        else "the instance"
    )
    for result in results:
        print(
            f"dagster: {result.asset:<20} {result.days_held:>6,} days held, {result.reported:>6,} reported as "
            f"materialised, {result.already_materialised:>6,} already were"
        )
    print(f"dagster: recorded in {storage}")
