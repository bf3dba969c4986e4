"""Fixtures shared by the suite: a real embedded PostgreSQL with pgvector, and the shared data folder."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"
REALDATA = SHARED / "realdata"
EVAL = SHARED / "eval"


def shared_path(*parts: str) -> Path:
    """A path under ../shared, skipping the test when the folder is absent (a user's clone).

    Under CI the folder is always there, so these tests always run.
    """
    path = SHARED.joinpath(*parts)
    if not SHARED.exists():
        if os.environ.get("CI"):
            raise FileNotFoundError(f"CI must have ../shared beside the repository: {SHARED}")
        pytest.skip(f"../shared is not beside this clone ({SHARED})")
    return path


def _stop_immediately(pgdata: Path, wait_s: float = 20.0) -> bool:
    """Stop the session's server without its shutdown checkpoint (PostgreSQL's "immediate" mode).

    The folder is thrown away with the session, so there is nothing to keep, and a normal stop
    first writes every changed page of its buffers (up to 2 GB here) to disk: some 25 s at the end
    of every suite. Returns False when there is no server to stop this way."""
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split()[0])
        os.kill(pid, signal.SIGQUIT)
    except (FileNotFoundError, ValueError, IndexError, ProcessLookupError):
        return False
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


@pytest.fixture(scope="session")
def chaffee_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One embedded PostgreSQL for the whole test session, in a temporary CHAFFEE_HOME."""
    home = tmp_path_factory.mktemp("chaffee_home")
    previous = {k: os.environ.get(k) for k in ("CHAFFEE_HOME", "DATABASE_URL", "DAGSTER_PG_URL")}
    os.environ["CHAFFEE_HOME"] = str(home)
    os.environ.pop("DATABASE_URL", None)
    os.environ.pop("DAGSTER_PG_URL", None)
    yield home
    from chaffee_assets.warehouse.server import stop_embedded_server

    # Loading the project's Dagster instance exports the embedded server's URL as DATABASE_URL into
    # this process (dagster_instance.py), and with DATABASE_URL set there is no embedded server to
    # stop: the session's server was left running after every test session.
    os.environ.pop("DATABASE_URL", None)
    if not _stop_immediately(home / "pgdata"):
        stop_embedded_server()
    for key, value in previous.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def embedded_admin_url(chaffee_home: Path) -> str:
    from chaffee_assets.warehouse.server import embedded_server_uri

    return embedded_server_uri("postgres")


def _fresh_database(admin_url: str, prefix: str) -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return admin_url.replace("/postgres?", f"/{name}?", 1)


@pytest.fixture
def empty_database_url(embedded_admin_url: str) -> str:
    """A new, empty database on the embedded server (no migrations applied)."""
    return _fresh_database(embedded_admin_url, "empty")


@pytest.fixture
def warehouse_url(embedded_admin_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new, migrated warehouse database; DATABASE_URL points at it for the test's duration."""
    from chaffee_assets.warehouse.migrate import upgrade

    url = _fresh_database(embedded_admin_url, "wh")
    upgrade(url)
    monkeypatch.setenv("DATABASE_URL", url)
    return url


@pytest.fixture(scope="session")
def sample_template_url(embedded_admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The sample library (and a hostile video) segmented and embedded once per session, as a template.

    Nothing connects to it but `CREATE DATABASE … TEMPLATE`: tests get copies (`sample_copy`)."""
    from chaffee_assets_tests.web_helpers import fill_sample_warehouse, new_database

    url = new_database(embedded_admin_url, "sample_template")
    fill_sample_warehouse(url, tmp_path_factory.mktemp("sample") / "library")
    return url


def sample_copy(admin_url: str, template_url: str, prefix: str) -> str:
    """A new database holding what the filled template holds (a file copy: no re-embedding)."""
    from urllib.parse import urlsplit

    template = urlsplit(template_url).path.lstrip("/")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template))
        )
    return template_url.replace(f"/{template}?", f"/{name}?", 1)


@pytest.fixture(scope="session")
def sample_warehouse_url(embedded_admin_url: str, sample_template_url: str) -> str:
    """A warehouse holding the sample library (and a hostile video), shared by the whole session.

    Read-only: tests that write to a warehouse make their own copy of the template."""
    return sample_copy(embedded_admin_url, sample_template_url, "sample")
