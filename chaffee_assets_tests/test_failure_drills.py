"""Failure drills: runs killed, a database that goes away, hostile library entries, runs racing each other.

Every drill ends the same way: the warehouse holds exactly the rows of one clean run of the same
partition in another database (compared by video id and ordinal, vectors within a tolerance) and
satisfies the warehouse's invariants. Real videos from the dev library are copied into a folder and
placed on days the tests choose.

To kill a run at a known point, the test holds a lock the run needs next (a row or table lock in
its own transaction) and waits until the run's backend is waiting for it: the run is then
provably in the middle of a step, some videos done and one video's write begun but not committed.
The assets are too fast on four small videos for a timer or a poll to land inside a step reliably.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import psycopg
import pytest
from psycopg import sql

from chaffee_assets.definitions import INGEST_ASSETS, build_resources
from chaffee_assets.defs.ingest_assets import transcripts, videos
from chaffee_assets.defs.resources import VideoSourceResource, WarehouseResource
from chaffee_assets.defs.retrieval_assets import segments
from chaffee_assets.ingest.library import LibrarySource
from chaffee_assets.ingest_runner import QUIET_CONSOLE
from chaffee_assets.warehouse.kept_connections import close_kept_connections
from chaffee_assets.warehouse.migrate import upgrade
from chaffee_assets_tests.conftest import shared_path
from chaffee_assets_tests.pg_proxy import UnixSocketProxy, tcp_url, unix_socket_of
from chaffee_assets_tests.warehouse_snapshot import (
    WarehouseSnapshot,
    consistency_problems,
    differences,
    take_snapshot,
)

DRILL_PARTITION = "2021-03-04"
# (dev library id, hour of publication on the drill day). Listing order is by time, segment
# order by id: the two differ on purpose, and one id starts with '-'.
DRILL_VIDEOS = (("31wjVhCcI5Y", 8), ("-OBCwiPPfEU", 10), ("4F_RBc1akC8", 12), ("17O5mgXZ9ZU", 14))

BAD_DAY_PARTITION = "2021-05-06"
HOSTILE_TITLE = "\"'; DROP TABLE videos; -- 🥩🔥 \\\\ C:\\meat\\ שלום עולם مرحبا ‮RTL‏ `$(rm -rf /)` %s {0}"

RUN_TIMEOUT_S = 300  # a cold subprocess imports Dagster and torch and loads the model on 2 cores

# One partition materialised in a fresh interpreter. It prints the error each failed step raised (below
# Dagster's "error occurred while executing op") and exits 1 if the run failed.
_RUN_SCRIPT = """
import json, sys
import dagster as dg
from chaffee_assets.definitions import INGEST_ASSETS, build_resources
from chaffee_assets.defs.resources import VideoSourceResource
from chaffee_assets.ingest_runner import QUIET_CONSOLE

result = dg.materialize(
    INGEST_ASSETS,
    resources=build_resources(VideoSourceResource(library_dir=sys.argv[1])),
    partition_key=sys.argv[2],
    instance=dg.DagsterInstance.ephemeral(),
    run_config=QUIET_CONSOLE,
    raise_on_error=False,
)


def raised_by_step(error):
    while error.cls_name.startswith("Dagster") and error.cause is not None:
        error = error.cause
    return error.message.strip()


failures = [raised_by_step(event.step_failure_data.error) for event in result.all_events if event.is_step_failure]
print(json.dumps({"success": result.success, "failures": failures}))
sys.exit(0 if result.success else 1)
"""


# -- libraries -------------------------------------------------------------------------------------


def copy_video(library: Path, video_id: str, published: datetime | None, *, title: str | None = None) -> None:
    """Copy a dev-library video (info.json + captions), published at `published` (None: no date at all)."""
    source = shared_path("eval", "huberman_dev", "library")
    info = json.loads((source / f"{video_id}.info.json").read_text(encoding="utf-8"))
    for key in ("timestamp", "upload_date", "release_timestamp", "release_date"):
        info.pop(key, None)
    if published is not None:
        info["timestamp"] = int(published.timestamp())
        info["upload_date"] = published.strftime("%Y%m%d")
    if title is not None:
        info["title"] = info["fulltitle"] = title
    library.mkdir(parents=True, exist_ok=True)
    (library / f"{video_id}.info.json").write_text(json.dumps(info, ensure_ascii=False), encoding="utf-8")
    for caption in source.glob(f"{video_id}.en.*"):
        (library / caption.name).write_bytes(caption.read_bytes())


@pytest.fixture(scope="module")
def drill_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    library = tmp_path_factory.mktemp("drill_library")
    day = datetime.fromisoformat(DRILL_PARTITION).replace(tzinfo=UTC)
    for video_id, hour in DRILL_VIDEOS:
        copy_video(library, video_id, day.replace(hour=hour))
    return library


# -- warehouses and runs ---------------------------------------------------------------------------


def new_warehouse(admin_url: str) -> str:
    """A new, migrated database on the embedded server."""
    name = f"drill_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = admin_url.replace("/postgres?", f"/{name}?", 1)
    upgrade(url)
    return url


def materialize_partition(
    url: str,
    library: Path,
    partition: str = DRILL_PARTITION,
    assets: Sequence[dg.AssetsDefinition] = INGEST_ASSETS,
) -> dg.ExecuteInProcessResult:
    resources = {
        **build_resources(VideoSourceResource(library_dir=str(library))),
        "warehouse": WarehouseResource(database_url=url),
    }
    return dg.materialize(
        assets,
        resources=resources,
        partition_key=partition,
        instance=dg.DagsterInstance.ephemeral(),
        run_config=QUIET_CONSOLE,
        raise_on_error=False,
    )


def step_failure_causes(result: dg.ExecuteInProcessResult) -> list[str]:
    """The error each failed step raised, below Dagster's "error occurred while executing op"."""
    causes = []
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data.error is not None:
            error = event.step_failure_data.error
            while error.cls_name.startswith("Dagster") and error.cause is not None:
                error = error.cause
            causes.append(error.message.strip())
    return causes


@dataclass
class RunProcess:
    """A partition materialised by another Python process, its output in files (never a full pipe)."""

    process: subprocess.Popen[bytes]
    output: Path
    log: Path

    def tail(self, chars: int = 4000) -> str:
        text = self.output.read_text(errors="replace") + self.log.read_text(errors="replace")
        return text[-chars:]

    def finish(self, timeout: float = RUN_TIMEOUT_S) -> dict:
        """Wait for the run; its summary: {"success": bool, "failures": [each failed step's cause]}."""
        self.process.wait(timeout=timeout)
        lines = self.output.read_text().strip().splitlines()
        assert lines, f"the run printed no summary (exit {self.process.returncode}):\n{self.tail()}"
        return json.loads(lines[-1])

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        assert self.process.returncode == -signal.SIGKILL


def start_run_process(url: str, library: Path, folder: Path, partition: str = DRILL_PARTITION) -> RunProcess:
    name = uuid.uuid4().hex[:6]
    output, log = folder / f"run-{name}.out", folder / f"run-{name}.log"
    env = {**os.environ, "DATABASE_URL": url}
    with output.open("wb") as out, log.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-c", _RUN_SCRIPT, str(library), partition], env=env, stdout=out, stderr=err
        )
    return RunProcess(process, output, log)


@contextmanager
def holding(url: str, statement: str, params: Sequence[object] = ()) -> Iterator[psycopg.Connection]:
    """A transaction that took a lock with `statement` and keeps it until the block ends."""
    with psycopg.connect(url) as conn:
        conn.execute(statement, params)
        try:
            yield conn
        finally:
            conn.rollback()


def wait_until_waiting_for_locks(url: str, backends: int, runs: Sequence[RunProcess]) -> list[str]:
    """Until `backends` connections to the database wait for a lock (the runs reached the gate).

    Returns the statements they wait in.
    """
    deadline = time.monotonic() + RUN_TIMEOUT_S
    with psycopg.connect(url, autocommit=True) as conn:
        while True:
            waiting = conn.execute(
                "SELECT query FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            ).fetchall()
            if len(waiting) >= backends:
                return [query for (query,) in waiting]
            for run in runs:
                assert run.process.poll() is None, f"the run ended before the gate:\n{run.tail()}"
            assert time.monotonic() < deadline, "the runs never reached the gate"
            time.sleep(0.05)


def wait_until_no_other_connections(url: str, timeout: float = 60) -> None:
    """Until the server has ended the backends of killed clients (their transactions rolled back).

    This process's own idle connections, kept from the runs it executed itself, are closed first.
    """
    close_kept_connections()
    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as conn:
        while conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()[0]:
            assert time.monotonic() < deadline, "a killed run's connection is still open"
            time.sleep(0.05)


def assert_same_rows(url: str, expected: WarehouseSnapshot) -> WarehouseSnapshot:
    actual = take_snapshot(url)
    assert differences(actual, expected) == []
    assert consistency_problems(url) == []
    return actual


@pytest.fixture(scope="module")
def clean_run(embedded_admin_url: str, drill_library: Path) -> WarehouseSnapshot:
    """The drill partition materialised once into a database of its own: what every drill must equal."""
    url = new_warehouse(embedded_admin_url)
    result = materialize_partition(url, drill_library)
    assert result.success
    assert consistency_problems(url) == []
    snapshot = take_snapshot(url)
    assert snapshot.counts()["transcripts"] == len(DRILL_VIDEOS)
    assert snapshot.counts()["segment_embeddings"] == snapshot.counts()["segments"] > len(DRILL_VIDEOS)
    return snapshot


# -- re-runs ---------------------------------------------------------------------------------------


def test_rerunning_a_partition_leaves_the_same_rows_as_running_it_once(
    warehouse_url: str, drill_library: Path, clean_run: WarehouseSnapshot
):
    assert materialize_partition(warehouse_url, drill_library).success
    with psycopg.connect(warehouse_url) as conn:
        segment_ids = conn.execute("SELECT segment_id FROM segments ORDER BY 1").fetchall()

    rerun = materialize_partition(warehouse_url, drill_library)

    assert rerun.success
    assert_same_rows(warehouse_url, clean_run)
    with psycopg.connect(warehouse_url) as conn:
        # Unchanged transcripts keep their segments, so their vectors are not recomputed.
        assert conn.execute("SELECT segment_id FROM segments ORDER BY 1").fetchall() == segment_ids
    written = rerun.asset_materializations_for_node("transcripts")[0].metadata["written"].value
    assert written == 0


# -- runs killed with SIGKILL ----------------------------------------------------------------------


@dataclass(frozen=True)
class KillPoint:
    """Where a run is killed: after `seed` was materialised, while waiting for the lock `gate` takes."""

    stage: str
    seed: tuple[dg.AssetsDefinition, ...]
    gate: str
    waits_in: str  # part of the statement the run is stopped in
    videos_done: dict[str, int]  # table -> how many videos have all their rows in it when killed
    gate_params: tuple[str, ...] = ()


KILL_POINTS = [
    KillPoint(
        # Two transcripts are committed; the step waits for the third listed video's row.
        "transcripts",
        seed=(videos,),
        gate="SELECT 1 FROM videos WHERE video_id = %s FOR KEY SHARE",
        gate_params=(DRILL_VIDEOS[2][0],),
        waits_in="FOR UPDATE",  # write_transcript locking the video's row
        videos_done={"transcripts": 2, "segments": 0, "segment_embeddings": 0},
    ),
    KillPoint(
        # Two videos' segments are committed; the step waits for the third video (in id order).
        "segments",
        seed=(videos, transcripts),
        gate="SELECT 1 FROM videos WHERE video_id = (SELECT video_id FROM videos ORDER BY video_id"
        " OFFSET 2 LIMIT 1) FOR KEY SHARE",
        waits_in="FOR UPDATE",  # replace_segments locking the video's row
        videos_done={"transcripts": 4, "segments": 2, "segment_embeddings": 0},
    ),
    KillPoint(
        # Every vector is computed and copied to a temporary table; the insert waits.
        "segment_embeddings",
        seed=(),
        gate="LOCK TABLE segment_embeddings IN SHARE MODE",
        waits_in="INSERT INTO segment_embeddings",
        videos_done={"transcripts": 4, "segments": 4, "segment_embeddings": 0},
    ),
]


@pytest.mark.parametrize("kill_point", KILL_POINTS, ids=lambda point: f"killed-in-{point.stage}")
def test_a_run_killed_mid_partition_leaves_no_half_written_video_and_a_rerun_completes_it(
    kill_point: KillPoint,
    warehouse_url: str,
    drill_library: Path,
    clean_run: WarehouseSnapshot,
    tmp_path: Path,
):
    if kill_point.seed:
        assert materialize_partition(warehouse_url, drill_library, assets=kill_point.seed).success
    with holding(warehouse_url, kill_point.gate, kill_point.gate_params):
        run = start_run_process(warehouse_url, drill_library, tmp_path)
        try:
            [stopped_in] = wait_until_waiting_for_locks(warehouse_url, 1, [run])
            assert kill_point.waits_in in stopped_in
            at_kill = take_snapshot(warehouse_url)
            run.kill()
        finally:
            if run.process.poll() is None:
                run.kill()
    wait_until_no_other_connections(warehouse_url)

    after_kill = take_snapshot(warehouse_url)
    assert differences(after_kill, at_kill) == []  # nothing the killed statement had begun survived
    assert consistency_problems(warehouse_url) == []
    for table, done in kill_point.videos_done.items():
        written, complete = after_kill.rows_by_video(table), clean_run.rows_by_video(table)
        assert len(written) == done, f"{table}: videos with rows after a kill in {kill_point.stage}"
        for video_id, rows in written.items():
            assert rows == complete[video_id], f"{table} of {video_id} is half-written"

    assert materialize_partition(warehouse_url, drill_library).success
    assert_same_rows(warehouse_url, clean_run)


# -- the database going away -----------------------------------------------------------------------


def test_a_database_outage_mid_run_fails_the_run_in_one_line_and_the_next_run_completes(
    warehouse_url: str, drill_library: Path, clean_run: WarehouseSnapshot, tmp_path: Path
):
    with UnixSocketProxy(unix_socket_of(warehouse_url)) as proxy:
        through_proxy = tcp_url(warehouse_url, proxy.port)
        # The run commits videos and transcripts, then the segments step waits at the gate, mid-write.
        with holding(warehouse_url, "LOCK TABLE segments IN SHARE MODE"):
            run = start_run_process(through_proxy, drill_library, tmp_path)
            wait_until_waiting_for_locks(warehouse_url, 1, [run])
            proxy.cut()
            summary = run.finish()
        wait_until_no_other_connections(warehouse_url)

        assert not summary["success"]
        [message] = summary["failures"]
        # One line that says what happened and what to do, not libpq's three-line traceback text.
        assert len(message.strip().splitlines()) == 1
        assert "lost the connection to PostgreSQL" in message and "re-run the partition" in message
        assert "server closed the connection unexpectedly" in message
        committed = take_snapshot(warehouse_url)
        assert committed.videos == clean_run.videos
        assert committed.transcripts == clean_run.transcripts
        assert committed.counts()["segments"] == 0
        assert consistency_problems(warehouse_url) == []

        # `segments` has no retry policy (videos and transcripts wait 30 s and more between tries).
        while_down = materialize_partition(through_proxy, drill_library, assets=[segments])
        [refused] = step_failure_causes(while_down)
        assert refused.startswith(
            "chaffee_assets.warehouse.server.WarehouseError: cannot connect to PostgreSQL"
        )
        assert "\n" not in refused
        proxy.restore()
        assert materialize_partition(through_proxy, drill_library).success
    assert_same_rows(warehouse_url, clean_run)


# -- concurrent runs -------------------------------------------------------------------------------


def test_two_runs_of_the_same_partition_at_once_leave_the_same_rows_as_one(
    warehouse_url: str, drill_library: Path, clean_run: WarehouseSnapshot, tmp_path: Path
):
    # Both runs wait at the transcripts step (one for the gate, one for the other's row lock), so
    # they are released together and contend for every step after it.
    with holding(warehouse_url, "LOCK TABLE transcripts IN SHARE MODE"):
        runs = [start_run_process(warehouse_url, drill_library, tmp_path) for _ in range(2)]
        try:
            wait_until_waiting_for_locks(warehouse_url, 2, runs)
        except BaseException:
            for run in runs:
                run.kill()
            raise
    summaries = [run.finish() for run in runs]

    assert [s["failures"] for s in summaries] == [[], []]
    assert all(s["success"] for s in summaries)
    assert_same_rows(warehouse_url, clean_run)


# -- hostile library entries -----------------------------------------------------------------------

GOOD_DASH_ID = "-OBCwiPPfEU"  # carries the hostile title too
GOOD_PLAIN_ID = "31wjVhCcI5Y"
CORRUPT_CAPTIONS_ID = "17O5mgXZ9ZU"
EMPTY_CAPTIONS_ID = "4F_RBc1akC8"
UNDATED_ID = "LG53Vxum0as"


@dataclass(frozen=True)
class BadDay:
    library: Path
    url: str
    result: dg.ExecuteInProcessResult


@pytest.fixture(scope="module")
def bad_day(tmp_path_factory: pytest.TempPathFactory, embedded_admin_url: str) -> BadDay:
    library = tmp_path_factory.mktemp("bad_day_library")
    day = datetime.fromisoformat(BAD_DAY_PARTITION).replace(tzinfo=UTC)
    copy_video(library, GOOD_DASH_ID, day.replace(hour=9), title=HOSTILE_TITLE)
    copy_video(library, GOOD_PLAIN_ID, day.replace(hour=10))
    copy_video(library, CORRUPT_CAPTIONS_ID, day.replace(hour=11))
    [corrupt] = library.glob(f"{CORRUPT_CAPTIONS_ID}.en.*")
    corrupt.write_bytes(b"\x00\xff\xfe\x9c" * 64 + corrupt.read_bytes()[:300])
    copy_video(library, EMPTY_CAPTIONS_ID, day.replace(hour=12))
    [empty] = library.glob(f"{EMPTY_CAPTIONS_ID}.en.*")
    empty.write_bytes(b"")
    copy_video(library, UNDATED_ID, None)
    url = new_warehouse(embedded_admin_url)
    return BadDay(library, url, materialize_partition(url, library, BAD_DAY_PARTITION))


def test_bad_entries_do_not_fail_their_day(bad_day: BadDay):
    assert bad_day.result.success
    assert consistency_problems(bad_day.url) == []


def test_the_good_videos_beside_bad_ones_are_fully_ingested(bad_day: BadDay):
    with psycopg.connect(bad_day.url) as conn:
        status = dict(
            conn.execute(
                "SELECT v.video_id, (SELECT count(*) FROM segments s JOIN segment_embeddings e USING (segment_id)"
                "                    WHERE s.video_id = v.video_id)"
                " FROM videos v JOIN transcripts t ON t.video_id = v.video_id AND t.is_current"
            ).fetchall()
        )
    assert set(status) == {GOOD_DASH_ID, GOOD_PLAIN_ID}
    assert all(embedded > 0 for embedded in status.values())


def test_a_hostile_title_and_a_dash_id_round_trip_exactly(bad_day: BadDay):
    with psycopg.connect(bad_day.url) as conn:
        title = conn.execute("SELECT title FROM videos WHERE video_id = %s", (GOOD_DASH_ID,)).fetchone()[0]
        link, view_title = conn.execute(
            "SELECT link, title FROM searchable_segments WHERE video_id = %s AND ordinal = 0", (GOOD_DASH_ID,)
        ).fetchone()
        tables = conn.execute("SELECT count(*) FROM videos").fetchone()[0]
    assert title == view_title == HOSTILE_TITLE
    assert link.startswith(f"https://www.youtube.com/watch?v={GOOD_DASH_ID}&t=")
    assert tables == 4  # the dated entries; nothing was dropped


@pytest.mark.parametrize("video_id", [CORRUPT_CAPTIONS_ID, EMPTY_CAPTIONS_ID], ids=["corrupt", "empty"])
def test_an_unreadable_caption_file_is_recorded_as_an_error_naming_the_file(bad_day: BadDay, video_id: str):
    [caption] = bad_day.library.glob(f"{video_id}.en.*")
    with psycopg.connect(bad_day.url) as conn:
        failure_class, message = conn.execute(
            "SELECT failure_class, message FROM transcript_attempts WHERE video_id = %s", (video_id,)
        ).fetchone()
        transcribed = conn.execute(
            "SELECT count(*) FROM transcripts WHERE video_id = %s", (video_id,)
        ).fetchone()
    assert failure_class == "error"
    assert str(caption) in message
    assert "\n" not in message
    assert transcribed == (0,)
    metadata = bad_day.result.asset_materializations_for_node("transcripts")[0].metadata
    assert metadata["failed"].value == 2
    assert video_id in metadata["failures"].value


def test_an_info_json_without_a_date_is_skipped_and_reported(bad_day: BadDay):
    [skipped] = LibrarySource(bad_day.library).skipped()
    assert skipped.video_id == UNDATED_ID
    assert skipped.path == bad_day.library / f"{UNDATED_ID}.info.json"
    assert str(skipped.path) in skipped.reason and "upload_date" in skipped.reason
    with psycopg.connect(bad_day.url) as conn:
        assert conn.execute("SELECT count(*) FROM videos WHERE video_id = %s", (UNDATED_ID,)).fetchone() == (
            0,
        )
