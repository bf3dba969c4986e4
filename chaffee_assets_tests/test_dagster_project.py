"""The code location loads, dagster.yaml yields a PostgreSQL-backed instance, and `chaffee dev` serves the UI."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg
import psycopg
from dagster_graphql import DagsterGraphQLClient

from chaffee_assets.defs.checks import SAMPLE_LIBRARY
from chaffee_assets.warehouse.server import WAREHOUSE_DATABASE, embedded_server_uri

DagsterRunStatus = dg.DagsterRunStatus
SAMPLE_DAY = "2024-02-12"  # the day of one sample-library video


def test_definitions_load_and_validate():
    from chaffee_assets.definitions import defs

    dg.Definitions.validate_loadable(defs)
    assert defs.resolve_asset_graph().get_all_asset_keys()


def test_dagster_yaml_yields_a_postgres_instance_on_the_embedded_server(chaffee_home: Path, monkeypatch):
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

    from chaffee_assets.dagster_instance import project_instance
    from chaffee_assets.defs.pools import GPU_POOL

    for key in ("DAGSTER_HOME", "CHAFFEE_DAGSTER_PG_URL", "CHAFFEE_DAGSTER_ARTIFACTS_DIR",
                "CHAFFEE_DAGSTER_COMPUTE_LOGS_DIR", "DATABASE_URL"):  # fmt: skip
        monkeypatch.delenv(key, raising=False)
    instance = project_instance()
    try:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        assert "/dagster?" in os.environ["CHAFFEE_DAGSTER_PG_URL"]  # its own database
        assert str(chaffee_home) in os.environ["CHAFFEE_DAGSTER_PG_URL"]  # on the embedded server
        assert instance.event_log_storage.get_concurrency_info(GPU_POOL).slot_count == 1
        assert instance.run_retries_enabled
    finally:
        instance.dispose()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_chaffee_dev_serves_the_ui_runs_a_launched_partition_and_stops_cleanly(chaffee_home: Path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DAGSTER_HOME")}
    env["CHAFFEE_LIBRARY_DIR"] = str(SAMPLE_LIBRARY)  # a library deployment: no network needed
    chaffee = str(Path(sys.executable).parent / "chaffee")
    proc = subprocess.Popen(
        [chaffee, "dev", "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    answer = None
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/graphql",
                    data=json.dumps({"query": "{ version }"}).encode(),
                    headers={"Content-Type": "application/json"},
                )
                with urllib.request.urlopen(request, timeout=5) as response:
                    answer = json.loads(response.read())
                    break
            except OSError:
                time.sleep(1)
        assert answer is not None, proc.stdout.read().decode() if proc.poll() is not None else "no answer"
        assert answer["data"]["version"]
        # The whole path an operator's click takes: queued run → daemon → run worker on dagster.yaml.
        client = DagsterGraphQLClient("127.0.0.1", port_number=port)
        run_id = client.submit_job_execution("ingest_job", tags={"dagster/partition": SAMPLE_DAY})
        status = None
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            status = client.get_run_status(run_id)
            if status in (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED):
                break
            time.sleep(2)
        assert status == DagsterRunStatus.SUCCESS
        with psycopg.connect(embedded_server_uri(WAREHOUSE_DATABASE)) as conn:
            written = conn.execute(
                "SELECT count(*) FROM segment_embeddings e JOIN segments s USING (segment_id) "
                "JOIN videos v USING (video_id) WHERE v.partition_date = %s",
                (SAMPLE_DAY,),
            ).fetchone()[0]
        assert written > 0
    finally:
        with contextlib.suppress(ProcessLookupError):  # it may have exited already (a failed start)
            os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    assert proc.returncode is not None
    # Nothing was left behind: no process of its session, nothing listening on the port.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _session_alive(proc.pid):
        time.sleep(0.5)
    assert not _session_alive(proc.pid)
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0


def _session_alive(session_id: int) -> bool:
    try:
        os.killpg(session_id, 0)
    except ProcessLookupError:
        return False
    return True
