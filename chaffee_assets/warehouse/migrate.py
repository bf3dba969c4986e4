"""Schema migrations: numbered plain `.sql` files in `migrations/`, applied once each, in order.

Each file runs in its own transaction and is recorded in `schema_migrations` with its checksum.
A transaction-level advisory lock serialises concurrent upgraders (two run workers starting at
once), so a migration is never applied twice.

An applied migration is never edited: schema changes ship as a new numbered file. Every upgrade
compares the recorded checksums with the files and refuses to go on when an applied file changed,
since the database would silently disagree with what the file now says.

Definitions (`definitions/*.sql`) are the other kind: objects that PostgreSQL can only replace whole,
such as the `search_segments` function. Each file holds the object's current text and is applied
after the numbered migrations whenever it differs from what the database last recorded in
`schema_definitions`, so changing the function is an edit of one file, not a new migration that
restates it. The function's earlier versions are in the numbered migrations that created it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import psycopg

from chaffee_assets.warehouse.server import WarehouseError, connect, register_vector_types, warehouse_url

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
DEFINITIONS_DIR = Path(__file__).parent / "definitions"
_MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_ADVISORY_LOCK_KEY = 0x43484146  # "CHAF": any constant shared by every upgrader

_CREATE_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""

_CREATE_DEFINITIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_definitions (
    name        text PRIMARY KEY,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


class _SqlFile:
    """A file of SQL: its text and the checksum recorded when it is applied."""

    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @property
    def checksum(self) -> str:
        # Line endings normalised, so a checkout that converts them (git autocrlf) is not a change.
        return hashlib.sha256(self.path.read_bytes().replace(b"\r\n", b"\n")).hexdigest()


@dataclass(frozen=True)
class Migration(_SqlFile):
    version: int
    name: str
    path: Path


@dataclass(frozen=True)
class Definition(_SqlFile):
    """An object replaced whole, named after its file (`search_segments`)."""

    name: str
    path: Path


def available_migrations() -> list[Migration]:
    migrations = []
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        match = _MIGRATION_NAME.match(path.name)
        if not match:
            raise WarehouseError(f"migration file {path.name} is not named NNNN_snake_case.sql")
        migrations.append(Migration(int(match.group(1)), match.group(2), path))
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise WarehouseError(f"two migration files share a version number in {MIGRATIONS_DIR}")
    return migrations


def available_definitions() -> list[Definition]:
    return [Definition(path.stem, path) for path in sorted(DEFINITIONS_DIR.glob("*.sql"))]


def applied_versions(conn: psycopg.Connection) -> dict[int, str]:
    """version → checksum of the migrations recorded in this database (empty if none)."""
    exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()[0]
    if not exists:
        return {}
    return dict(conn.execute("SELECT version, checksum FROM schema_migrations").fetchall())


def applied_definitions(conn: psycopg.Connection) -> dict[str, str]:
    """name → checksum of the definitions recorded in this database (empty if none)."""
    exists = conn.execute("SELECT to_regclass('schema_definitions') IS NOT NULL").fetchone()[0]
    if not exists:
        return {}
    return dict(conn.execute("SELECT name, checksum FROM schema_definitions").fetchall())


def stale_definitions(recorded: dict[str, str], definitions: list[Definition]) -> list[Definition]:
    """The definitions not yet applied, or changed since they were."""
    return [d for d in definitions if recorded.get(d.name) != d.checksum]


def changed_migrations(recorded: dict[int, str], migrations: list[Migration]) -> list[Migration]:
    """The applied migrations whose file no longer has the checksum recorded when it was applied."""
    return [m for m in migrations if m.version in recorded and recorded[m.version] != m.checksum]


def refuse_changed(changed: list[Migration]) -> None:
    if changed:
        names = ", ".join(m.path.name for m in changed)
        raise WarehouseError(
            f"migration {names} changed after it was applied to this database (its checksum differs): "
            "restore the file and ship the schema change as a new numbered migration; a development "
            "database you can discard can be recreated instead (chaffee db stop, then delete its pgdata)"
        )


# The search function sets hnsw.iterative_scan (pgvector 0.8) and migration 0010 stores
# binary_quantize's sign bits (0.7).
MIN_PGVECTOR = (0, 8, 0)


def pgvector_version_tuple(version: str) -> tuple[int, ...]:
    """A version's numbers, to compare: "0.8.5" -> (0, 8, 5), "0.8.0-rc1" -> (0, 8, 0)."""
    return tuple(int(m.group()) if (m := re.match(r"\d+", part)) else 0 for part in version.split(".")[:3])


def require_pgvector_version(conn: psycopg.Connection) -> None:
    """Raise WarehouseError, before any migration, when the database's pgvector (or, before it is
    created, the one the server offers) is older than MIN_PGVECTOR."""
    installed, offered = conn.execute(
        "SELECT (SELECT extversion FROM pg_extension WHERE extname = 'vector'), "
        "(SELECT default_version FROM pg_available_extensions WHERE name = 'vector')"
    ).fetchone()
    version = installed or offered
    if version and pgvector_version_tuple(version) < MIN_PGVECTOR:
        needed = ".".join(map(str, MIN_PGVECTOR))
        where = "is installed in this database" if installed else "is what the server offers"
        then = (
            "install a newer pgvector package on the server, then run ALTER EXTENSION vector UPDATE"
            if installed
            else "install a newer pgvector package on the server"
        )
        raise WarehouseError(f"pgvector {version} {where}; the warehouse needs {needed} or later: {then}")


def upgrade(url: str | None = None) -> list[Migration]:
    """Apply every migration not yet recorded, then every definition that changed. Returns the
    migrations applied now (empty: already current).

    Raises WarehouseError, before applying anything, when an applied migration's file has changed.
    """
    return upgrade_and_define(url)[0]


def upgrade_and_define(url: str | None = None) -> tuple[list[Migration], list[Definition]]:
    """`upgrade`, returning the definitions it applied as well."""
    applied_now: list[Migration] = []
    migrations = available_migrations()
    with connect(url or warehouse_url()) as conn:
        with conn.transaction():
            refuse_changed(changed_migrations(applied_versions(conn), migrations))
            require_pgvector_version(conn)
        for migration in migrations:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_ADVISORY_LOCK_KEY,))
                conn.execute(_CREATE_MIGRATIONS_TABLE)
                recorded = applied_versions(conn)
                if migration.version in recorded:
                    continue
                try:
                    conn.execute(migration.sql)
                except psycopg.Error as exc:
                    raise WarehouseError(
                        f"migration {migration.path.name} failed: {str(exc).strip().splitlines()[0]}"
                    ) from exc
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                    (migration.version, migration.name, migration.checksum),
                )
                applied_now.append(migration)
        defined_now = _apply_definitions(conn)
        _sync_reference_rows(conn)
        register_vector_types(conn)
    return applied_now, defined_now


def _apply_definitions(conn: psycopg.Connection) -> list[Definition]:
    """Apply every definition whose file differs from what this database recorded (after the
    numbered migrations, which create what the definitions read)."""
    applied_now = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_ADVISORY_LOCK_KEY,))
        conn.execute(_CREATE_DEFINITIONS_TABLE)
        for definition in stale_definitions(applied_definitions(conn), available_definitions()):
            try:
                conn.execute(definition.sql)
            except psycopg.Error as exc:
                raise WarehouseError(
                    f"definition {definition.path.name} failed: {str(exc).strip().splitlines()[0]}"
                ) from exc
            conn.execute(
                "INSERT INTO schema_definitions (name, checksum) VALUES (%s, %s) "
                "ON CONFLICT (name) DO UPDATE SET checksum = excluded.checksum, applied_at = now()",
                (definition.name, definition.checksum),
            )
            applied_now.append(definition)
    return applied_now


def _sync_reference_rows(conn: psycopg.Connection) -> None:
    """Rows the code owns: the transcript sources of the engine registry (see migration 0004)."""
    from chaffee_assets.transcription import registry

    with conn.transaction():
        if conn.execute("SELECT to_regclass('transcript_sources') IS NOT NULL").fetchone()[0]:
            registry.sync_table(conn)


def pending(url: str | None = None) -> list[Migration]:
    with connect(url or warehouse_url()) as conn:
        recorded = applied_versions(conn)
    return [m for m in available_migrations() if m.version not in recorded]


@cache
def _upgraded_once(url: str) -> bool:
    upgrade(url)
    return True


def ensure_schema(url: str | None = None) -> str:
    """Upgrade the schema the first time this process needs it; later calls cost nothing.

    Returns the warehouse URL, so callers can write `url = ensure_schema()`.
    """
    url = url or warehouse_url()
    _upgraded_once(url)
    return url
