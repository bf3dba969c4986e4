"""Move or back up the whole warehouse: one dump file out of a server, verified into another.

A dump is an uncompressed tar: `manifest.json` (the migration history, every table's columns and
row count, a sample of stored vectors' hashes and a few searches' top hits) and one binary `COPY`
stream per table. Which tables are the product's is read from the catalog of the schema the
migrations created (every table of the warehouse's schema that no extension owns), so a table a
later migration adds is carried without anyone listing it. docs/moving.md says why binary `COPY`
and not pg_dump, with the figures.

A restore runs in one transaction on the target, as a role that owns nothing but its database:
the schema is created by this code's own migrations up to the file's, keys, indexes and foreign
keys are dropped, the rows are copied in, then keys, indexes (HNSW included) and foreign keys are
built once over all the rows; the code's newer migrations follow, then the checks. Anything that
fails, the checks included, rolls the whole transaction back and the target is as it was.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import psycopg
from psycopg import sql

from chaffee_assets.error_text import one_line
from chaffee_assets.warehouse.migrate import (
    _ADVISORY_LOCK_KEY,
    _CREATE_DEFINITIONS_TABLE,
    _CREATE_MIGRATIONS_TABLE,
    available_definitions,
    available_migrations,
    require_pgvector_version,
    stale_definitions,
)
from chaffee_assets.warehouse.server import WarehouseError, connect, redact, register_vector_types

FORMAT = "chaffee-warehouse-dump"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"

# Tables the triggers on `segments` keep (BM25's postings and statistics). They are not shipped:
# copying the segments in, one statement, fires those statement-level triggers once over every
# row, which rebuilds them set-based; their row counts are still recorded and checked.
DERIVED_TABLES = ("segment_postings", "segment_lexemes", "segment_text_totals")

VECTOR_SAMPLE = 64  # stored vectors hashed at dump time and compared bit for bit after a restore
PROBE_SEARCHES = 3  # searches whose top hits must be the same after a restore
PROBE_HITS = 10
_CHUNK = 1 << 20

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


# -- the catalog ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Table:
    name: str
    columns: list[str]  # the stored columns, generated ones left out (the target computes them)
    vector_columns: list[str]
    key: list[str]  # the primary key's columns (empty without one)


_PRODUCT_TABLES_SQL = """
SELECT c.oid, c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND NOT EXISTS (SELECT 1 FROM pg_depend d
                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY c.relname
"""


def product_tables(conn: psycopg.Connection) -> list[Table]:
    """Every table of the warehouse's schema that no extension owns, with its stored columns."""
    tables = []
    for oid, name in conn.execute(_PRODUCT_TABLES_SQL).fetchall():
        columns = conn.execute(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
            "WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '' "
            "ORDER BY a.attnum",
            (oid,),
        ).fetchall()
        key = conn.execute(
            "SELECT a.attname FROM pg_index i JOIN LATERAL unnest(i.indkey) WITH ORDINALITY k(attnum, n) ON true "
            "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
            "WHERE i.indrelid = %s AND i.indisprimary ORDER BY k.n",
            (oid,),
        ).fetchall()
        tables.append(
            Table(
                name=name,
                columns=[c for c, _ in columns],
                vector_columns=[c for c, type_ in columns if type_.startswith("vector")],
                key=[k for (k,) in key],
            )
        )
    return tables


# -- dump ---------------------------------------------------------------------------------------


@dataclass
class DumpReport:
    path: Path
    tables: dict[str, int]  # shipped table -> rows
    derived: dict[str, int]
    bytes: int
    seconds: float


def dump(path: Path, url: str, *, progress: Progress = _quiet) -> DumpReport:
    """Write the warehouse at `url` into `path` (replaced only once the whole file is written)."""
    started = time.perf_counter()
    path = Path(path)
    if path.is_dir():
        raise WarehouseError(
            f"{path} is a folder; name the dump file to write, e.g. {path / 'warehouse.dump'}"
        )
    if not path.parent.exists():
        raise WarehouseError(f"cannot write {path}: the folder {path.parent} does not exist")
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    scratch = Path(tempfile.mkdtemp(prefix=".chaffee-dump-", dir=path.parent))
    try:
        with connect(url) as conn:
            # One snapshot for every table, so the file is one moment of the warehouse.
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            if not conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()[0]:
                raise WarehouseError(
                    f"{redact(url)} holds no warehouse (no schema_migrations table): nothing to dump"
                )
            manifest = _manifest_header(conn)
            tables = product_tables(conn)
            shipped: dict[str, int] = {}
            derived: dict[str, int] = {}
            for table in tables:
                rows = _count(conn, table.name)
                if table.name in DERIVED_TABLES:
                    derived[table.name] = rows
                    continue
                member = scratch / f"{table.name}.copy"
                with member.open("wb") as out:
                    _copy_out(conn, table, out)
                shipped[table.name] = rows
                manifest["tables"].append(
                    {
                        "name": table.name,
                        "columns": table.columns,
                        "rows": rows,
                        "member": f"tables/{table.name}.copy",
                    }
                )
                progress(f"dumped {table.name:<22} {rows:>12,} rows")
            manifest["derived_tables"] = derived
            manifest["vector_sample"] = _vector_sample(conn, tables)
            manifest["probe_searches"] = _probe_searches(conn)
            conn.rollback()
        with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
            data = json.dumps(manifest, indent=1).encode()
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mtime = len(data), int(time.time())
            tar.addfile(info, io.BytesIO(data))
            for entry in manifest["tables"]:
                tar.add(scratch / f"{entry['name']}.copy", arcname=entry["member"])
        partial.replace(path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        partial.unlink(missing_ok=True)
    return DumpReport(path, shipped, derived, path.stat().st_size, time.perf_counter() - started)


def _manifest_header(conn: psycopg.Connection) -> dict[str, Any]:
    migrations = conn.execute(
        "SELECT version, name, checksum FROM schema_migrations ORDER BY version"
    ).fetchall()
    has_definitions = conn.execute("SELECT to_regclass('schema_definitions') IS NOT NULL").fetchone()[0]
    definitions = (
        dict(conn.execute("SELECT name, checksum FROM schema_definitions").fetchall())
        if has_definitions
        else {}
    )
    server, vector = conn.execute(
        "SELECT current_setting('server_version'), (SELECT extversion FROM pg_extension WHERE extname = 'vector')"
    ).fetchone()
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "server_version": server,
        "pgvector": vector,
        "migrations": [{"version": v, "name": n, "checksum": c} for v, n, c in migrations],
        "definitions": definitions,
        "tables": [],
    }


def _count(conn: psycopg.Connection, table: str) -> int:
    return conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()[0]


def _column_list(columns: list[str]) -> sql.Composable:
    return sql.SQL(", ").join(map(sql.Identifier, columns))


def _copy_out(conn: psycopg.Connection, table: Table, out: IO[bytes]) -> None:
    statement = sql.SQL("COPY {} ({}) TO STDOUT (FORMAT BINARY)").format(
        sql.Identifier(table.name), _column_list(table.columns)
    )
    with conn.cursor().copy(statement) as copy:
        for chunk in copy:
            out.write(chunk)


def _vector_digest_sql(table: Table, column: str) -> sql.Composable:
    """Each row's key and the SHA-256 of the vector's binary form (pgvector's own send format)."""
    return sql.SQL("SELECT {key}, encode(sha256(vector_send({col})), 'hex') FROM {table}").format(
        key=_column_list(table.key), col=sql.Identifier(column), table=sql.Identifier(table.name)
    )


def _vector_sample(conn: psycopg.Connection, tables: list[Table]) -> list[dict[str, Any]]:
    sample = []
    for table in tables:
        for column in table.vector_columns:
            if not table.key:
                continue
            query = sql.SQL("{} ORDER BY md5(({})::text) LIMIT {}").format(
                _vector_digest_sql(table, column),
                sql.SQL("row(") + _column_list(table.key) + sql.SQL(")"),
                sql.Literal(VECTOR_SAMPLE),
            )
            for *key, digest in conn.execute(query).fetchall():
                sample.append({"table": table.name, "column": column, "key": key, "sha256": digest})
    return sample


class _StoredVector:
    """An 'embedder' that answers with a vector already in the warehouse: the probe searches need
    no model, so a restore runs where no model is installed."""

    def __init__(self, vector: Any) -> None:
        self.vector = vector

    def encode_queries(self, queries: list[str]) -> list[Any]:
        return [self.vector for _ in queries]


def _probe_searches(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """A few searches made of stored segments (their first words, their stored vector), with
    their top hits, for the restore to repeat."""
    if not conn.execute("SELECT to_regclass('segment_embeddings') IS NOT NULL").fetchone()[0]:
        return []
    rows = conn.execute(
        "SELECT e.segment_id, e.model, s.text FROM segment_embeddings e JOIN segments s USING (segment_id) "
        "ORDER BY md5(e.segment_id::text || e.model) LIMIT %s",
        (PROBE_SEARCHES,),
    ).fetchall()
    probes = []
    for segment_id, model, text in rows:
        question = " ".join(text.split()[:12])
        try:
            with conn.transaction():  # a savepoint: the dump's snapshot survives a failed search
                hits = _probe_hits(conn, question, segment_id, model)
        except psycopg.Error:
            # A warehouse not upgraded to this code's search function (chaffee db upgrade): the
            # dump is still whole, only without searches for the restore to repeat.
            return []
        probes.append({"question": question, "vector_of": [segment_id, model], "hits": hits})
    return probes


def _probe_hits(conn: psycopg.Connection, question: str, segment_id: int, model: str) -> list[list[Any]]:
    from chaffee_assets.search import SearchOptions, search

    register_vector_types(conn)
    (vector,) = conn.execute(
        "SELECT embedding FROM segment_embeddings WHERE segment_id = %s AND model = %s", (segment_id, model)
    ).fetchone()
    # Exact ranking: an HNSW graph built in one pass differs from one grown row by row, and the
    # check is about the rows, not about which approximate neighbours a graph finds.
    hits = search(
        question,
        k=PROBE_HITS,
        model=model,
        conn=conn,
        embedder=_StoredVector(vector),
        reranker="",
        options=SearchOptions(exact=True),
    )
    return [[hit.video_id, hit.segment_id] for hit in hits]


# -- reading a dump -------------------------------------------------------------------------------


@contextmanager
def open_dump(path: Path) -> Iterator[tuple[dict[str, Any], tarfile.TarFile]]:
    """The dump's manifest and its archive; a file that is not a dump is one clear line."""
    path = Path(path)
    if not path.is_file():
        raise WarehouseError(f"no dump file at {path}")
    try:
        tar = tarfile.open(path, "r:")  # noqa: SIM115 - closed by the with below
    except tarfile.TarError as exc:
        raise WarehouseError(f"{path} is not a warehouse dump (not a tar archive: {one_line(exc)})") from None
    with tar:
        try:
            member = tar.extractfile(MANIFEST)
            manifest = json.loads(member.read()) if member else None
        except (KeyError, ValueError, tarfile.TarError):
            manifest = None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise WarehouseError(f"{path} is not a warehouse dump (no {MANIFEST} written by chaffee db dump)")
        if manifest.get("format_version") != FORMAT_VERSION:
            raise WarehouseError(
                f"{path} is a dump of format {manifest.get('format_version')}; this code reads format "
                f"{FORMAT_VERSION}: restore it with the version of chaffee that wrote it"
            )
        yield manifest, tar


def refuse_newer_migrations(manifest: dict[str, Any]) -> None:
    """A file whose schema this code does not know cannot be restored by it: one line, before anything."""
    known = {m.version: m for m in available_migrations()}
    unknown = [m for m in manifest["migrations"] if m["version"] not in known]
    if unknown:
        newest = max(unknown, key=lambda m: m["version"])
        ours = max(known) if known else 0
        raise WarehouseError(
            f"the dump's schema is newer than this code: it has migration {newest['version']:04d}_"
            f"{newest['name']}, this code stops at {ours:04d}; restore it with the code that wrote it "
            "(update this checkout, then run the restore again)"
        )
    changed = [m for m in manifest["migrations"] if known[m["version"]].checksum != m["checksum"]]
    if changed:
        names = ", ".join(f"{m['version']:04d}_{m['name']}" for m in changed)
        raise WarehouseError(
            f"migration {names} differs between the dump and this code (its checksum): restore it with "
            "the code that wrote it"
        )


# -- restore --------------------------------------------------------------------------------------


@dataclass
class RestoreReport:
    tables: dict[str, int] = field(default_factory=dict)
    derived: dict[str, int] = field(default_factory=dict)
    vectors_compared: int = 0
    searches_compared: int = 0
    searches_skipped: str | None = None
    migrations_after: list[str] = field(default_factory=list)
    replaced_videos: int = 0
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)


class RestoreRefused(WarehouseError):
    """The target or the file is not one to restore (nothing was changed)."""


def restore(
    path: Path,
    url: str,
    *,
    replace: bool = False,
    maintenance_work_mem: str = "1GB",
    progress: Progress = _quiet,
) -> RestoreReport:
    """Load the dump at `path` into the warehouse at `url`, in one transaction, and verify it."""
    started = time.perf_counter()
    report = RestoreReport()
    with open_dump(path) as (manifest, tar), connect(url) as conn:
        refuse_newer_migrations(manifest)
        _require_server_version(conn, url)
        require_pgvector_version(conn)
        conn.rollback()
        _refuse_foreign_tables(conn, manifest, url)
        report.replaced_videos = _videos_held(conn)
        if report.replaced_videos and not replace:
            raise RestoreRefused(
                f"{redact(url)} already holds {report.replaced_videos:,} videos; pass --replace to replace "
                "the whole warehouse there (chaffee db dump it first to keep a copy)"
            )
        try:
            with conn.transaction():
                _restore_in_transaction(conn, manifest, tar, report, maintenance_work_mem, progress)
        except WarehouseError:
            raise
        except psycopg.Error as exc:
            raise WarehouseError(
                f"restore failed and was rolled back, the target is as it was: {one_line(exc)}"
            ) from exc
    report.seconds = time.perf_counter() - started
    return report


MIN_SERVER_VERSION = 140000  # the oldest PostgreSQL the warehouse supports (the tests run 16 and 18)


def _require_server_version(conn: psycopg.Connection, url: str) -> None:
    (version,) = conn.execute("SELECT current_setting('server_version_num')::int").fetchone()
    conn.rollback()
    if version < MIN_SERVER_VERSION:
        raise RestoreRefused(
            f"{redact(url)} runs PostgreSQL {version // 10000}; the warehouse needs 14 or later: "
            "restore into a newer server"
        )


def _refuse_foreign_tables(conn: psycopg.Connection, manifest: dict[str, Any], url: str) -> None:
    """A restore replaces every table of the schema; tables the dump does not have are someone
    else's (Dagster's storage pointed at the same database, another application): refuse."""
    ours = {entry["name"] for entry in manifest["tables"]} | set(manifest.get("derived_tables", {}))
    foreign = [table.name for table in product_tables(conn) if table.name not in ours]
    conn.rollback()
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise RestoreRefused(
            f"{redact(url)} holds tables the dump does not have ({shown}): restore into a database of the "
            "warehouse's own (Dagster's storage belongs in another database: DAGSTER_PG_URL)"
        )


def _videos_held(conn: psycopg.Connection) -> int:
    if not conn.execute("SELECT to_regclass('videos') IS NOT NULL").fetchone()[0]:
        conn.rollback()
        return 0
    held = conn.execute("SELECT count(*) FROM videos").fetchone()[0]
    conn.rollback()
    return held


def _restore_in_transaction(
    conn: psycopg.Connection,
    manifest: dict[str, Any],
    tar: tarfile.TarFile,
    report: RestoreReport,
    maintenance_work_mem: str,
    progress: Progress,
) -> None:
    def step(name: str, since: float) -> None:
        report.timings[name] = round(time.perf_counter() - since, 2)

    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_ADVISORY_LOCK_KEY,))
    conn.execute("SELECT set_config('maintenance_work_mem', %s, true)", (maintenance_work_mem,))
    t0 = time.perf_counter()
    _drop_product_objects(conn)
    _create_extension(conn)
    file_versions = {m["version"] for m in manifest["migrations"]}
    code_migrations = available_migrations()
    conn.execute(_CREATE_MIGRATIONS_TABLE)
    conn.execute(_CREATE_DEFINITIONS_TABLE)
    for migration in code_migrations:
        if migration.version in file_versions:
            _run_migration(conn, migration)
    register_vector_types(conn)
    step("schema_s", t0)

    tables = {t.name: t for t in product_tables(conn)}
    for entry in manifest["tables"]:
        table = tables.get(entry["name"])
        if table is None or table.columns != entry["columns"]:
            raise WarehouseError(
                f"the dump's table {entry['name']} does not match what its migrations create here "
                f"(columns {entry['columns']} against {table.columns if table else 'no such table'}); "
                "was the source's schema changed by hand?"
            )
    shipped = [tables[e["name"]] for e in manifest["tables"]]

    t0 = time.perf_counter()
    rebuild = _drop_keys_and_indexes(conn, [t.name for t in shipped])
    conn.execute(
        sql.SQL("TRUNCATE {}").format(sql.SQL(", ").join(sql.Identifier(t.name) for t in shipped))
    )  # the rows migrations seed (models, transcript sources) come back from the file
    for entry in manifest["tables"]:
        table_started = time.perf_counter()
        _copy_in(conn, tables[entry["name"]], tar, entry["member"])
        report.tables[entry["name"]] = entry["rows"]
        progress(
            f"loaded {entry['name']:<22} {entry['rows']:>12,} rows  {time.perf_counter() - table_started:6.1f} s"
        )
    step("rows_s", t0)

    t0 = time.perf_counter()
    for statement in rebuild:
        conn.execute(statement)
    _continue_identities(conn, [t.name for t in shipped])
    step("keys_and_indexes_s", t0)
    progress(
        f"built {len(rebuild)} keys and indexes after the rows ({report.timings['keys_and_indexes_s']:.1f} s)"
    )

    t0 = time.perf_counter()
    _verify_counts(conn, manifest, report)
    report.vectors_compared = _verify_vectors(conn, manifest, tables)
    step("verify_rows_s", t0)

    # The code's migrations the file does not have yet, then its current definitions.
    for migration in code_migrations:
        if migration.version not in file_versions:
            _run_migration(conn, migration)
            conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                (migration.version, migration.name, migration.checksum),
            )
            report.migrations_after.append(migration.path.name)
    # The dump's record of its definitions came back with the rows; what differs from this code's
    # means the probe searches below cannot be repeated. Every definition is applied whatever the
    # record says: the functions here so far are the migrations' first versions, not the dump's.
    recorded = dict(conn.execute("SELECT name, checksum FROM schema_definitions").fetchall())
    definitions = available_definitions()
    stale = stale_definitions(recorded, definitions)
    for definition in definitions:
        conn.execute(definition.sql)
        conn.execute(
            "INSERT INTO schema_definitions (name, checksum) VALUES (%s, %s) "
            "ON CONFLICT (name) DO UPDATE SET checksum = excluded.checksum, applied_at = now()",
            (definition.name, definition.checksum),
        )
    from chaffee_assets.transcription import registry

    if conn.execute("SELECT to_regclass('transcript_sources') IS NOT NULL").fetchone()[0]:
        registry.sync_table(conn)
    conn.execute("ANALYZE")

    t0 = time.perf_counter()
    if report.migrations_after or stale:
        report.searches_skipped = "the code's search differs from the one that ranked them in the dump"
    else:
        report.searches_compared = _verify_searches(conn, manifest)
    step("verify_searches_s", t0)


def _drop_product_objects(conn: psycopg.Connection) -> None:
    """Drop what the product owns in the schema (views, tables, functions, types), never what an
    extension owns: the extension stays, since a role that is not a superuser cannot create it."""
    not_extension = (
        "NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = {catalog}::regclass AND d.objid = {oid} "
        "AND d.deptype = 'e')"
    )
    views = conn.execute(
        "SELECT c.oid::regclass::text FROM pg_class c WHERE c.relnamespace = current_schema()::regnamespace "
        "AND c.relkind IN ('v', 'm') AND " + not_extension.format(catalog="'pg_class'", oid="c.oid")
    ).fetchall()
    for (view,) in views:
        conn.execute(f"DROP VIEW IF EXISTS {view} CASCADE")  # noqa: S608 - names from the catalog, quoted by regclass
    for table in product_tables(conn):
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(sql.Identifier(table.name)))
    functions = conn.execute(
        "SELECT p.oid::regprocedure::text FROM pg_proc p WHERE p.pronamespace = current_schema()::regnamespace "
        "AND " + not_extension.format(catalog="'pg_proc'", oid="p.oid")
    ).fetchall()
    for (function,) in functions:
        conn.execute(f"DROP ROUTINE IF EXISTS {function} CASCADE")  # noqa: S608 - regprocedure text
    sequences = conn.execute(
        "SELECT c.oid::regclass::text FROM pg_class c WHERE c.relnamespace = current_schema()::regnamespace "
        "AND c.relkind = 'S' AND " + not_extension.format(catalog="'pg_class'", oid="c.oid")
    ).fetchall()
    for (sequence,) in sequences:
        conn.execute(f"DROP SEQUENCE IF EXISTS {sequence} CASCADE")  # noqa: S608 - regclass text
    types = conn.execute(
        "SELECT t.oid::regtype::text FROM pg_type t WHERE t.typnamespace = current_schema()::regnamespace "
        "AND t.typtype IN ('e', 'd') AND " + not_extension.format(catalog="'pg_type'", oid="t.oid")
    ).fetchall()
    for (type_,) in types:
        conn.execute(f"DROP TYPE IF EXISTS {type_} CASCADE")  # noqa: S608 - regtype text


def _create_extension(conn: psycopg.Connection) -> None:
    exists = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone()
    if exists:
        return
    try:
        with conn.transaction():
            conn.execute("CREATE EXTENSION vector")
    except psycopg.errors.InsufficientPrivilege:
        database = conn.info.dbname
        raise WarehouseError(
            f"the pgvector extension is not created in database {database} and this role may not create it: "
            f"ask the server's administrator to run CREATE EXTENSION vector; in {database} "
            "(on RDS/Cloud SQL the database owner can), then run the restore again"
        ) from None


def _run_migration(conn: psycopg.Connection, migration) -> None:
    try:
        conn.execute(migration.sql)
    except psycopg.Error as exc:
        raise WarehouseError(
            f"restore failed and was rolled back, the target is as it was: migration {migration.path.name} "
            f"failed there: {one_line(exc)}"
        ) from exc


def _drop_keys_and_indexes(conn: psycopg.Connection, tables: list[str]) -> list[str]:
    """Drop the tables' keys, foreign keys and indexes; return the statements that rebuild them
    (keys, then indexes, then foreign keys, which need the keys they point at)."""
    oids = [conn.execute("SELECT %s::regclass::oid", (t,)).fetchone()[0] for t in tables]
    constraints = conn.execute(
        "SELECT conrelid::regclass::text, conname, contype, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = ANY(%s) AND contype IN ('p', 'u', 'x', 'f') ORDER BY contype = 'f' DESC, conname",
        (oids,),
    ).fetchall()
    indexes = conn.execute(
        "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i "
        "WHERE i.indrelid = ANY(%s) AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid "
        "AND c.conrelid = i.indrelid) ORDER BY 1",
        (oids,),
    ).fetchall()
    keys, foreign_keys = [], []
    for table, name, kind, definition in constraints:  # foreign keys first: keys they need come after
        drop = sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(sql.SQL(table), sql.Identifier(name))
        try:
            with conn.transaction():  # a view that depends on a key keeps it (it is then kept, not rebuilt)
                conn.execute(drop)
        except psycopg.errors.DependentObjectsStillExist:
            continue
        add = f"ALTER TABLE {table} ADD CONSTRAINT {sql.Identifier(name).as_string(conn)} {definition}"
        (foreign_keys if kind == "f" else keys).append(add)
    rebuilt_indexes = []
    for index, definition in indexes:
        conn.execute(f"DROP INDEX {index}")  # noqa: S608 - regclass text
        rebuilt_indexes.append(definition)
    return keys + rebuilt_indexes + foreign_keys


def _copy_in(conn: psycopg.Connection, table: Table, tar: tarfile.TarFile, member: str) -> None:
    source = tar.extractfile(member)
    if source is None:
        raise WarehouseError(f"the dump has no data for table {table.name} ({member}): the file is damaged")
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(table.name), _column_list(table.columns)
    )
    with conn.cursor().copy(statement) as copy:
        while chunk := source.read(_CHUNK):
            copy.write(chunk)


def _continue_identities(conn: psycopg.Connection, tables: list[str]) -> None:
    """Identity columns continue after the highest value restored, as they did on the source."""
    identities = conn.execute(
        "SELECT c.relname, a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
        "WHERE c.relname = ANY(%s) AND c.relnamespace = current_schema()::regnamespace AND a.attidentity <> ''",
        (tables,),
    ).fetchall()
    for table, column in identities:
        conn.execute(
            sql.SQL(
                "SELECT setval(pg_get_serial_sequence({t}, {c}), coalesce(max({col}), 0) + 1, false) FROM {tab}"
            ).format(
                t=sql.Literal(sql.Identifier(table).as_string(conn)),
                c=sql.Literal(column),
                col=sql.Identifier(column),
                tab=sql.Identifier(table),
            )
        )


def _verify_counts(conn: psycopg.Connection, manifest: dict[str, Any], report: RestoreReport) -> None:
    expected = {e["name"]: e["rows"] for e in manifest["tables"]} | manifest.get("derived_tables", {})
    wrong = []
    for table, rows in expected.items():
        found = _count(conn, table)
        if found != rows:
            wrong.append(f"{table} {found:,} of {rows:,}")
        if table in manifest.get("derived_tables", {}):
            report.derived[table] = found
    if wrong:
        raise WarehouseError(
            "restore rolled back, the target is as it was: the restored row counts differ from the dump's: "
            + ", ".join(wrong)
        )


def _verify_vectors(conn: psycopg.Connection, manifest: dict[str, Any], tables: dict[str, Table]) -> int:
    compared = 0
    for sample in manifest.get("vector_sample", []):
        table = tables[sample["table"]]
        condition = sql.SQL(" AND ").join(
            sql.SQL("{} = {}").format(sql.Identifier(k), sql.Literal(v))
            for k, v in zip(table.key, sample["key"], strict=True)
        )
        query = sql.SQL("{} WHERE {}").format(_vector_digest_sql(table, sample["column"]), condition)
        row = conn.execute(query).fetchone()
        if row is None or row[-1] != sample["sha256"]:
            raise WarehouseError(
                f"restore rolled back, the target is as it was: the vector of {sample['table']} {sample['key']} "
                "is not bit for bit the one dumped"
            )
        compared += 1
    return compared


def _verify_searches(conn: psycopg.Connection, manifest: dict[str, Any]) -> int:
    compared = 0
    for probe in manifest.get("probe_searches", []):
        segment_id, model = probe["vector_of"]
        hits = _probe_hits(conn, probe["question"], segment_id, model)
        if hits != probe["hits"]:
            raise WarehouseError(
                f"restore rolled back, the target is as it was: the search {probe['question']!r} finds "
                f"{hits[:3]}… here and {probe['hits'][:3]}… in the dump"
            )
        compared += 1
    return compared


def file_digest(path: Path) -> str:
    """SHA-256 of a file, for logs that name which dump was restored."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
