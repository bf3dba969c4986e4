"""`chaffee db dump` / `chaffee db restore`: the whole warehouse between two real servers, verified,
refused in one line where it must be, and rolled back whole when it fails."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import psycopg
import pytest

from chaffee_assets.retrieval import store
from chaffee_assets.retrieval.segmenter import Segment
from chaffee_assets.warehouse.transfer import MANIFEST, product_tables

from . import second_postgres as second_server
from .conftest import _fresh_database
from .second_postgres import SecondServer

second_postgres = second_server.second_postgres  # the session fixture

CHAFFEE = str(Path(sys.executable).parent / "chaffee")
MODEL = "all-MiniLM-L6-v2"
WORDS = [
    "fasting",
    "insulin",
    "ketones",
    "sleep",
    "light",
    "dopamine",
    "protein",
    "meat",
    "fat",
    "cholesterol",
]


def _fill(url: str) -> None:
    """A small warehouse written by the product's own store functions: videos on two days, their
    transcripts, segments (postings kept by the triggers) and vectors, and a row in each ledger
    and in the answers cache."""
    rng = np.random.default_rng(7)
    with psycopg.connect(url) as conn:
        from chaffee_assets.warehouse.server import register_vector_types

        register_vector_types(conn)
        for n, day in enumerate(("2019-03-04", "2019-03-04", "2021-07-15")):
            video_id = f"-mv{n}video"  # ids may begin with '-'
            conn.execute(
                "INSERT INTO videos (video_id, source, title, published_at, url) VALUES (%s, 'library', %s, %s, 'x')",
                (video_id, f"Video {n}", f"{day}T12:00:00Z"),
            )
            (transcript_id,) = conn.execute(
                "INSERT INTO transcripts (video_id, version, source, cues) VALUES (%s, 1, 'library_file', '[]') "
                "RETURNING transcript_id",
                (video_id,),
            ).fetchone()
            conn.commit()
            segments = [
                Segment(i, 30.0 * i, 30.0 * i + 45, " ".join(rng.choice(WORDS, 60))) for i in range(40)
            ]
            ids = store.replace_segments(conn, video_id, transcript_id, segments)
            vectors = rng.standard_normal((len(ids), 384)).astype(np.float32)
            store.write_embeddings(conn, MODEL, zip(ids, vectors, strict=True))
        conn.execute(
            "INSERT INTO asr_spend (video_id, engine, model, audio_seconds, usd) "
            "VALUES ('-mv2video', 'openai', 'whisper-1', 600, 0.06)"
        )
        (spend_id,) = conn.execute(
            "INSERT INTO answer_spend (model, question_key, status, usd) VALUES ('gpt', 'k1', 'settled', 0.002) "
            "RETURNING spend_id"
        ).fetchone()
        conn.execute(
            "INSERT INTO answers (question_key, question, model, answer, answered, citations, passages, cost_usd, "
            "spend_id) VALUES ('k1', 'is meat healthy?', 'gpt', 'Yes [1].', true, '[1]', '[]', 0.002, %s)",
            (spend_id,),
        )
        conn.commit()


@pytest.fixture(scope="module")
def source_url(embedded_admin_url: str) -> str:
    from chaffee_assets.warehouse.migrate import upgrade

    url = _fresh_database(embedded_admin_url, "movesrc")
    upgrade(url)
    _fill(url)
    return url


@pytest.fixture(scope="module")
def dump_file(source_url: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dump") / "warehouse.dump"
    done = _chaffee(["db", "dump", str(path)], source_url)
    assert done.returncode == 0, done.stderr
    assert f"wrote {path}" in done.stdout
    return path


def _chaffee(argv: list[str], database_url: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CHAFFEE, *argv],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "DATABASE_URL": database_url, **env},
    )


def _contents(url: str) -> dict[str, tuple[int, str]]:
    """Every product table's row count and a digest of all its rows (vectors as pgvector writes them)."""
    with psycopg.connect(url) as conn:
        out = {}
        for table in product_tables(conn):
            if table.name in ("schema_definitions", "schema_migrations"):
                # applied_at says when each was applied there; the versions and checksums must match
                query = f"SELECT count(*), md5(coalesce(string_agg(x, '|' ORDER BY x), '')) FROM (SELECT concat_ws(',', {', '.join(c for c in table.columns if c != 'applied_at')}) x FROM {table.name}) t"  # noqa: S608, E501
            else:
                query = f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM \"{table.name}\" t"  # noqa: S608
            out[table.name] = tuple(conn.execute(query).fetchone())
        return out


def _vector_digests(url: str) -> dict[tuple[int, str], str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT segment_id, model, encode(sha256(vector_send(embedding)), 'hex') FROM segment_embeddings"
        ).fetchall()
    return {(s, m): d for s, m, d in rows}


def test_a_restore_on_another_server_as_a_role_that_is_not_superuser_is_the_same_warehouse(
    source_url: str, dump_file: Path, second_postgres: SecondServer
) -> None:
    target = second_postgres.new_database()

    done = _chaffee(["db", "restore", str(dump_file), "--no-dagster"], target)

    assert done.returncode == 0, done.stderr
    with psycopg.connect(source_url) as conn:
        tables = len(product_tables(conn))  # every table, a later migration's included
    verified = f"verified: {tables} tables' row counts, 64 vectors bit for bit, 3 searches' top hits the same"
    assert verified in done.stdout
    assert _contents(target) == _contents(source_url)
    assert _vector_digests(target) == _vector_digests(source_url)
    with psycopg.connect(target) as conn:
        assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone() == (
            False,
        )
        assert conn.execute("SELECT current_setting('server_version_num')::int / 10000").fetchone()[0] == (
            second_postgres.major
        )
        hnsw = conn.execute(
            "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "JOIN pg_am a ON a.oid = c.relam WHERE a.amname = 'hnsw'"
        ).fetchall()
        assert hnsw == [(True,)]
        # Identities continue past the restored rows, and the triggers keep the postings again.
        (transcript_id,) = conn.execute(
            "INSERT INTO transcripts (video_id, version, source, cues, is_current) "
            "VALUES ('-mv0video', 2, 'library_file', '[]', false) RETURNING transcript_id"
        ).fetchone()
        assert (
            transcript_id
            > conn.execute("SELECT max(transcript_id) FROM transcripts WHERE version = 1").fetchone()[0]
        )
        conn.execute(
            "INSERT INTO segments (video_id, transcript_id, ordinal, start_s, end_s, text) "
            "VALUES ('-mv0video', %s, 999, 0, 30, 'zeppelin') ",
            (transcript_id,),
        )
        assert conn.execute("SELECT count(*) FROM segment_postings WHERE lexeme = 'zeppelin'").fetchone() == (
            1,
        )
        conn.rollback()


def test_a_target_that_holds_videos_is_refused_in_one_line_unless_replace(
    source_url: str, dump_file: Path, second_postgres: SecondServer
) -> None:
    target = second_postgres.new_database()
    assert _chaffee(["db", "restore", str(dump_file), "--no-dagster"], target).returncode == 0
    with psycopg.connect(target) as conn:
        conn.execute("DELETE FROM videos WHERE video_id = '-mv2video'")
        conn.execute(
            "INSERT INTO asr_spend (engine, model, audio_seconds, usd) VALUES ('openai', 'w', 1, 0.1)"
        )
        conn.commit()
    before = _contents(target)

    refused = _chaffee(["db", "restore", str(dump_file), "--no-dagster"], target)

    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1 and "already holds 2 videos; pass --replace" in refused.stderr
    assert second_postgres.owner_password not in refused.stderr  # the URL is named without its password
    assert _contents(target) == before

    replaced = _chaffee(["db", "restore", str(dump_file), "--no-dagster", "--replace"], target)

    assert replaced.returncode == 0, replaced.stderr
    assert "replaced a warehouse of 2 videos" in replaced.stdout
    assert _contents(target) == _contents(source_url)


def _rewritten(dump_file: Path, into: Path, *, manifest_edit=None, member_edit=None) -> Path:
    """A copy of the dump with its manifest or one member changed."""
    with tarfile.open(dump_file) as src, tarfile.open(into, "w") as out:
        for member in src.getmembers():
            data = src.extractfile(member).read()
            if member.name == MANIFEST and manifest_edit:
                manifest = json.loads(data)
                manifest_edit(manifest)
                data = json.dumps(manifest).encode()
            elif member_edit and member.name in member_edit:
                data = member_edit[member.name](data)
            member.size = len(data)
            out.addfile(member, io.BytesIO(data))
    return into


def test_a_dump_from_newer_code_is_refused_in_one_line_before_anything_changes(
    dump_file: Path, second_postgres: SecondServer, tmp_path: Path
) -> None:
    def add_migration(manifest: dict) -> None:
        manifest["migrations"].append({"version": 9999, "name": "from_the_future", "checksum": "0"})

    newer = _rewritten(dump_file, tmp_path / "newer.dump", manifest_edit=add_migration)
    target = second_postgres.new_database()

    done = _chaffee(["db", "restore", str(newer), "--no-dagster"], target)

    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "the dump's schema is newer than this code: it has migration 9999_from_the_future" in done.stderr
    with psycopg.connect(target) as conn:
        assert conn.execute("SELECT to_regclass('videos')").fetchone() == (None,)


def test_a_restore_that_fails_midway_leaves_the_embedded_target_as_it_was(
    source_url: str, dump_file: Path, embedded_admin_url: str, tmp_path: Path
) -> None:
    target = _fresh_database(embedded_admin_url, "movetgt")
    assert _chaffee(["db", "restore", str(dump_file), "--no-dagster"], target).returncode == 0
    assert _contents(target) == _contents(source_url)
    with psycopg.connect(target) as conn:
        conn.execute("DELETE FROM videos WHERE video_id = '-mv0video'")
        conn.commit()
    before = _contents(target)
    # The segments' rows cut short: the server rejects the stream after the other tables loaded.
    damaged = _rewritten(
        dump_file,
        tmp_path / "damaged.dump",
        member_edit={"tables/segments.copy": lambda data: data[: len(data) // 2]},
    )

    done = _chaffee(["db", "restore", str(damaged), "--no-dagster", "--replace"], target)

    assert done.returncode != 0
    assert done.stderr.count("\n") == 1
    assert "restore failed and was rolled back, the target is as it was" in done.stderr
    assert _contents(target) == before


def test_a_database_without_pgvector_is_one_line_saying_who_must_create_it(
    dump_file: Path, second_postgres: SecondServer
) -> None:
    target = second_postgres.new_database(with_vector=False)

    done = _chaffee(["db", "restore", str(dump_file), "--no-dagster"], target)

    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "ask the server's administrator to run CREATE EXTENSION vector" in done.stderr
    with psycopg.connect(target) as conn:
        assert conn.execute("SELECT to_regclass('videos')").fetchone() == (None,)


def test_a_file_that_is_not_a_dump_is_one_line(tmp_path: Path, second_postgres: SecondServer) -> None:
    not_a_dump = tmp_path / "notes.txt"
    not_a_dump.write_text("hello")

    done = _chaffee(["db", "restore", str(not_a_dump)], second_postgres.new_database())

    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and done.stderr.startswith(
        f"error: {not_a_dump} is not a warehouse dump"
    )


def test_a_database_holding_other_tables_is_refused_and_they_are_left_alone(
    dump_file: Path, second_postgres: SecondServer
) -> None:
    target = second_postgres.new_database()
    with psycopg.connect(target) as conn:
        conn.execute("CREATE TABLE runs (run_id text PRIMARY KEY)")  # e.g. Dagster's storage, misplaced
        conn.execute("INSERT INTO runs VALUES ('r1')")
        conn.commit()

    done = _chaffee(["db", "restore", str(dump_file), "--no-dagster", "--replace"], target)

    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "holds tables the dump does not have (runs)" in done.stderr
    with psycopg.connect(target) as conn:
        assert conn.execute("SELECT run_id FROM runs").fetchall() == [("r1",)]
        assert conn.execute("SELECT to_regclass('videos')").fetchone() == (None,)


def test_a_dump_from_older_code_is_restored_and_brought_up_to_date_in_the_same_transaction(
    embedded_admin_url: str, tmp_path: Path
) -> None:
    from chaffee_assets.warehouse.migrate import available_migrations

    *older, newest = available_migrations()
    source = _fresh_database(embedded_admin_url, "oldsrc")
    with psycopg.connect(source) as conn:  # a warehouse the code before the newest migration left
        conn.execute("CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, "
                     "checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())")  # fmt: skip
        for migration in older:
            conn.execute(migration.sql)
            conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                (migration.version, migration.name, migration.checksum),
            )
        conn.commit()
    _fill(source)
    older_dump = tmp_path / "older.dump"
    assert _chaffee(["db", "dump", str(older_dump)], source).returncode == 0
    target = _fresh_database(embedded_admin_url, "newtgt")

    done = _chaffee(["db", "restore", str(older_dump), "--no-dagster"], target)

    assert done.returncode == 0, done.stderr
    assert f"applied {newest.path.name} (newer than the dump)" in done.stdout
    with psycopg.connect(target) as conn:
        versions = [v for (v,) in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
        assert versions == [m.version for m in available_migrations()]
        assert conn.execute("SELECT count(*) FROM segments").fetchone() == (120,)
