"""The warehouse: migrations on a real embedded PostgreSQL, clear errors, one shared server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from chaffee_assets.warehouse.migrate import available_migrations, upgrade
from chaffee_assets.warehouse.server import WarehouseError, default_shared_buffers

CHAFFEE = str(Path(sys.executable).parent / "chaffee")  # the console script installed beside python


def test_migrations_apply_to_an_empty_database_and_a_second_upgrade_is_a_no_op(empty_database_url: str):
    applied = upgrade(empty_database_url)
    assert [m.version for m in applied] == [m.version for m in available_migrations()]
    assert upgrade(empty_database_url) == []
    with psycopg.connect(empty_database_url) as conn:
        recorded = conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0]
    assert recorded == len(available_migrations())


def test_a_database_with_a_pgvector_too_old_for_the_search_is_refused_before_any_migration(
    empty_database_url: str,
):
    """A database whose vector extension was created by pgvector 0.7 (the catalog says so, as it
    would after an old package created it) is refused in one line that says what to do, and no
    migration is applied: the search function needs 0.8's iterative HNSW scans."""
    with psycopg.connect(empty_database_url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION vector")
        conn.execute("UPDATE pg_extension SET extversion = '0.7.4' WHERE extname = 'vector'")
    with pytest.raises(
        WarehouseError,
        match=r"pgvector 0\.7\.4 is installed in this database; .*0\.8\.0 or later.*ALTER EXTENSION vector UPDATE",
    ):
        upgrade(empty_database_url)
    with psycopg.connect(empty_database_url) as conn:
        assert conn.execute("SELECT to_regclass('schema_migrations')").fetchone()[0] is None


def test_pgvector_versions_compare_by_their_numbers():
    from chaffee_assets.warehouse.migrate import MIN_PGVECTOR, pgvector_version_tuple

    assert pgvector_version_tuple("0.7.4") < MIN_PGVECTOR <= pgvector_version_tuple("0.8.0")
    assert pgvector_version_tuple("0.10.1") > pgvector_version_tuple("0.8.5")  # not as strings
    assert pgvector_version_tuple("0.8.0-rc1") == (0, 8, 0)


def test_a_definition_is_applied_after_the_migrations_and_again_only_when_its_file_changes(
    empty_database_url: str, tmp_path, monkeypatch
):
    """search_segments is defined by `definitions/search_segments.sql`, not by the last migration
    that restated it: an empty database gets the file's text, an unchanged file is not applied
    again, and an edited one replaces the function at the next upgrade."""
    from chaffee_assets.warehouse import migrate

    def function_text() -> str:
        with psycopg.connect(empty_database_url) as conn:
            return conn.execute("SELECT prosrc FROM pg_proc WHERE proname = 'search_segments'").fetchone()[0]

    (definition,) = migrate.available_definitions()
    applied, defined = migrate.upgrade_and_define(empty_database_url)
    assert applied and defined == [definition]
    assert function_text() in definition.sql
    assert migrate.upgrade_and_define(empty_database_url) == ([], [])

    edited = tmp_path / "definitions"
    edited.mkdir()
    text = definition.sql.replace("THEN 300 ELSE 100", "THEN 301 ELSE 100")
    assert text != definition.sql
    (edited / definition.path.name).write_text(text)
    monkeypatch.setattr(migrate, "DEFINITIONS_DIR", edited)
    assert [d.name for d in migrate.upgrade_and_define(empty_database_url)[1]] == ["search_segments"]
    assert "THEN 301 ELSE 100" in function_text()
    with psycopg.connect(empty_database_url) as conn:
        recorded = conn.execute(
            "SELECT checksum FROM schema_definitions WHERE name = 'search_segments'"
        ).fetchone()
    assert recorded == (migrate.available_definitions()[0].checksum,)


def test_upgrade_creates_pgvector_indexes_and_views(warehouse_url: str):
    with psycopg.connect(warehouse_url) as conn:
        assert conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
        indexes = dict(conn.execute("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'"))
        views = {row[0] for row in conn.execute("SELECT viewname FROM pg_views WHERE schemaname = 'public'")}
    assert "USING hnsw" in indexes["segment_embeddings_hnsw_all_minilm_l6_v2"]
    assert "vector_cosine_ops" in indexes["segment_embeddings_hnsw_all_minilm_l6_v2"]
    # BM25 reads its postings from a covering B-tree (lexeme, video, segment), not from a GIN index.
    assert "(lexeme, video_id, segment_id) INCLUDE (tf, words)" in indexes["segment_postings_pkey"]
    assert "segments_tsv_idx" not in indexes
    assert {"searchable_segments", "video_status", "asr_spend_daily"} <= views


def test_schema_rejects_what_a_careful_dba_would(warehouse_url: str):
    with psycopg.connect(warehouse_url) as conn:
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute(
                "INSERT INTO videos (video_id, source, title, url, availability) "
                "VALUES ('x', 'youtube', 't', 'u', 'gone')"
            )
        conn.rollback()
        conn.execute("INSERT INTO videos (video_id, source, title, url) VALUES ('-abc', 'library', 't', 'u')")
        conn.execute(
            "INSERT INTO transcripts (video_id, version, source, cues) VALUES ('-abc', 1, 'library_file', '[]')"
        )
        with pytest.raises(psycopg.errors.UniqueViolation):  # a second *current* transcript
            conn.execute(
                "INSERT INTO transcripts (video_id, version, source, cues) VALUES ('-abc', 2, 'openai', '[]')"
            )
        conn.rollback()
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            conn.execute(
                "INSERT INTO transcripts (video_id, version, source, cues) VALUES ('nope', 1, 'openai', '[]')"
            )


def test_partition_date_is_derived_from_publish_time_in_utc(warehouse_url: str):
    with psycopg.connect(warehouse_url) as conn:
        conn.execute(
            "INSERT INTO videos (video_id, source, title, url, published_at) "
            "VALUES ('v1', 'youtube', 't', 'u', '2024-03-01 23:30:00-05')"
        )
        assert str(conn.execute("SELECT partition_date FROM videos").fetchone()[0]) == "2024-03-02"


def test_a_server_without_pgvector_gives_one_clear_line(embedded_admin_url: str):
    # A database where no extension can be found behaves like a server without pgvector installed.
    with psycopg.connect(embedded_admin_url, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS no_pgvector")
        conn.execute("CREATE DATABASE no_pgvector")
        conn.execute("ALTER DATABASE no_pgvector SET extension_control_path = '/nonexistent'")
    url = embedded_admin_url.replace("/postgres?", "/no_pgvector?")
    with pytest.raises(WarehouseError) as excinfo:
        upgrade(url)
    message = str(excinfo.value)
    assert "pgvector" in message and "\n" not in message


def _run_chaffee(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHAFFEE, *args],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize(
    "database_url",
    [
        "postgresql://nobody@127.0.0.1:1/chaffee",  # nothing listens on port 1
        "postgresql://nobody@/chaffee?host=/nonexistent-socket-dir",
    ],
)
def test_an_unreachable_database_url_gives_one_line_not_a_traceback(database_url: str):
    result = _run_chaffee("db", "upgrade", env={**os.environ, "DATABASE_URL": database_url})
    assert result.returncode == 2
    assert result.stderr.startswith("error: cannot connect to PostgreSQL")
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_the_pgvector_error_reaches_the_command_line_as_one_line(embedded_admin_url: str):
    with psycopg.connect(embedded_admin_url, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS no_pgvector_cli")
        conn.execute("CREATE DATABASE no_pgvector_cli")
        conn.execute("ALTER DATABASE no_pgvector_cli SET extension_control_path = '/nonexistent'")
    url = embedded_admin_url.replace("/postgres?", "/no_pgvector_cli?")
    result = _run_chaffee("db", "upgrade", env={**os.environ, "DATABASE_URL": url})
    assert result.returncode == 2
    assert "does not have the pgvector extension" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_db_status_reports_migrations_and_row_counts(warehouse_url: str):
    result = _run_chaffee("db", "status", env={**os.environ, "DATABASE_URL": warehouse_url})
    assert result.returncode == 0, result.stderr
    assert "0001_initial.sql" in result.stdout and "applied" in result.stdout
    assert "segment_embeddings" in result.stdout
    definitions = result.stdout.split("definitions:\n", 1)[1].splitlines()[0].split()
    assert definitions == ["search_segments.sql", "applied"]
    # Every migration's and definition's state starts in one column, the longest name's included.
    listed = result.stdout.split("migrations:\n", 1)[1].split("rows:", 1)[0].splitlines()
    columns = {
        line.index(" applied") for line in listed if line.startswith("  ") and line.endswith(" applied")
    }
    assert len(listed) >= 11 and len(columns) == 1


def _own_embedded_server(tmp_path: Path) -> dict[str, str]:
    """An environment whose commands use an embedded server of their own under `tmp_path/home`."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DAGSTER_PG_URL")}
    env["CHAFFEE_HOME"] = str(tmp_path / "home")
    return env


_PROBE = """
import json, sys
from chaffee_assets.warehouse.server import connect, warehouse_url
with connect(warehouse_url()) as conn:
    row = conn.execute("SELECT pg_postmaster_start_time()::text, current_setting('data_directory')").fetchone()
print(json.dumps(row))
"""


def test_two_processes_asking_at_once_share_one_embedded_server(tmp_path: Path):
    env = _own_embedded_server(tmp_path)
    procs = [
        subprocess.Popen([sys.executable, "-c", _PROBE], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    try:
        assert all(p.returncode == 0 for p in procs)
        assert outputs[0] == outputs[1]  # same postmaster start time and data directory: one server
        assert outputs[0][1] == str((tmp_path / "home" / "pgdata").resolve())
    finally:
        subprocess.run([CHAFFEE, "db", "stop"], env=env, timeout=60)


def test_the_embedded_server_keeps_its_data_across_restarts(tmp_path: Path):
    env = _own_embedded_server(tmp_path)
    write = (
        "from chaffee_assets.warehouse.server import connect\n"
        "with connect() as c: c.execute('CREATE TABLE kept (x int)'); c.execute('INSERT INTO kept VALUES (42)')"
    )
    read = (
        "from chaffee_assets.warehouse.server import connect\n"
        "with connect() as c: print(c.execute('SELECT x FROM kept').fetchone()[0])"
    )
    stop = [CHAFFEE, "db", "stop"]
    try:
        subprocess.run([sys.executable, "-c", write], env=env, check=True, timeout=120)
        subprocess.run(stop, env=env, check=True, timeout=60)
        out = subprocess.run(
            [sys.executable, "-c", read], env=env, check=True, timeout=120, capture_output=True
        )
        assert out.stdout.decode().strip() == "42"
    finally:
        subprocess.run(stop, env=env, timeout=60)


@pytest.mark.parametrize(
    ("memory_gib", "expected"),
    [(0.25, "128MB"), (1, "256MB"), (6, "1536MB"), (64, "2048MB")],
)
def test_the_embedded_servers_buffers_are_a_quarter_of_memory_within_bounds(memory_gib, expected):
    assert default_shared_buffers(int(memory_gib * 2**30)) == expected


def test_the_embedded_server_starts_with_its_buffer_setting_and_says_when_a_change_waits(tmp_path: Path):
    env = _own_embedded_server(tmp_path)
    show = "from chaffee_assets.warehouse.server import connect\nwith connect() as c: print(c.execute('SHOW shared_buffers').fetchone()[0])"

    def running(setting: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", show], env={**env, "CHAFFEE_DB_SHARED_BUFFERS": setting},
            capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
        return done.stdout.strip()

    try:
        assert running("160MB") == "160MB"  # the very first start, right after initdb, has it
        status = _run_chaffee("db", "status", env={**env, "CHAFFEE_DB_SHARED_BUFFERS": "192MB"})
        assert status.returncode == 0, status.stderr
        assert "shared_buffers 160MB (configured 192MB: applies when the server next starts" in status.stdout
        assert running("192MB") == "160MB"  # a running server is not restarted under its users
        _run_chaffee("db", "stop", env=env)
        assert running("192MB") == "192MB"
        status = _run_chaffee("db", "status", env={**env, "CHAFFEE_DB_SHARED_BUFFERS": "192MB"})
        assert "memory:     shared_buffers 192MB\n" in status.stdout
    finally:
        subprocess.run([CHAFFEE, "db", "stop"], env=env, timeout=60)


def test_db_stop_stops_a_running_server_and_starts_none_to_stop(tmp_path: Path):
    env = _own_embedded_server(tmp_path)
    postmaster_pid = tmp_path / "home" / "pgdata" / "postmaster.pid"
    try:
        subprocess.run([sys.executable, "-c", _PROBE], env=env, check=True, timeout=120, capture_output=True)
        assert postmaster_pid.exists()
        assert _run_chaffee("db", "stop", env=env).stdout.strip() == "embedded server stopped"
        assert not postmaster_pid.exists()
        assert _run_chaffee("db", "stop", env=env).stdout.strip() == "no embedded server to stop"
        assert not postmaster_pid.exists()
    finally:
        subprocess.run([CHAFFEE, "db", "stop"], env=env, timeout=60)


def test_an_applied_migration_that_changed_is_refused_naming_the_file(
    empty_database_url: str, tmp_path, monkeypatch
):
    from chaffee_assets.warehouse import migrate

    upgrade(empty_database_url)
    edited = tmp_path / "migrations"
    edited.mkdir()
    for migration in available_migrations():
        (edited / migration.path.name).write_bytes(migration.path.read_bytes())
    first = sorted(edited.iterdir())[0]
    first.write_text(first.read_text() + "\n-- an edit after the fact\n")
    monkeypatch.setattr(migrate, "MIGRATIONS_DIR", edited)
    with pytest.raises(WarehouseError) as excinfo:
        upgrade(empty_database_url)
    message = str(excinfo.value)
    assert message.startswith(f"migration {first.name} changed after it was applied")
    assert "new numbered migration" in message and "\n" not in message


def test_a_line_ending_conversion_is_not_a_change(tmp_path):
    from chaffee_assets.warehouse.migrate import Migration

    unix, windows = tmp_path / "0001_a.sql", tmp_path / "0002_a.sql"
    unix.write_bytes(b"CREATE TABLE t (x int);\nSELECT 1;\n")
    windows.write_bytes(b"CREATE TABLE t (x int);\r\nSELECT 1;\r\n")
    assert Migration(1, "a", unix).checksum == Migration(2, "a", windows).checksum


def test_chaffee_db_upgrade_and_status_report_a_changed_migration(warehouse_url: str):
    first = available_migrations()[0]
    with psycopg.connect(warehouse_url, autocommit=True) as conn:
        conn.execute("UPDATE schema_migrations SET checksum = 'recorded-before-an-edit' WHERE version = %s",
                     (first.version,))  # fmt: skip
    env = {**os.environ, "DATABASE_URL": warehouse_url}
    upgraded = _run_chaffee("db", "upgrade", env=env)
    assert upgraded.returncode == 2
    assert upgraded.stderr.startswith(f"error: migration {first.path.name} changed after it was applied")
    assert len(upgraded.stderr.strip().splitlines()) == 1
    status = _run_chaffee("db", "status", env=env)
    assert status.returncode == 0, status.stderr
    assert f"{first.path.name}" in status.stdout and "CHANGED since it was applied" in status.stdout
