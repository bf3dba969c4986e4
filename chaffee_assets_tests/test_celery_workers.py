"""Steps on Celery workers, chosen by configuration: a Redis broker, one worker on the default queue and
one on `gpu`, and `chaffee ingest` of the sample library whose steps run in the workers' processes,
`transcripts` on the `gpu` worker and everything else on the other."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import psycopg
import pytest

import chaffee_assets
from chaffee_assets.defs.executors import EXECUTOR_CONFIG_ENV, ExecutorConfigError, celery_executor_from_file
from chaffee_assets_tests import deploy_topology as topology
from chaffee_assets_tests.web_helpers import chaffee_command, free_port, new_database

REPO = Path(__file__).resolve().parent.parent
CELERY_YAML = REPO / "deploy" / "celery.yaml"
SAMPLE = Path(chaffee_assets.__file__).resolve().parent / "sample_library"
VENV_BIN = Path(sys.executable).parent
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
QUEUES = {"cpu": "dagster", "gpu": "gpu"}
# compose.yaml's services (profile `celery`) whose commands the workers run.
WORKER_SERVICES = {"cpu": "worker", "gpu": "worker-gpu"}

# Redis, two Celery workers and an ingest of the sample library: minutes.
slow = pytest.mark.slow


def _wait_for_port(port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on {port} after {timeout_s} s")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


@contextlib.contextmanager
def _redis(folder: Path) -> Iterator[str]:
    """A real Redis on a free 127.0.0.1 port, without persistence."""
    if not Path(REDIS_SERVER).exists():
        pytest.fail("redis-server is not installed (scripts/install.sh installs it)")
    port = free_port()
    process = subprocess.Popen(
        [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(folder)],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        _wait_for_port(port, 30)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        _stop(process)


def _project_environment(env: dict[str, str]) -> dict[str, str]:
    """`eval "$(chaffee db env)"`: the variables every process of the instance needs."""
    out = subprocess.run(
        [chaffee_command(), "db", "env"], env=env, capture_output=True, text=True, check=True, timeout=120
    ).stdout
    exports = {}
    for line in out.splitlines():
        if line.startswith("export "):
            key, _, value = line.removeprefix("export ").partition("=")
            exports[key] = shlex.split(value)[0] if value else ""
    return {**env, **exports}


@pytest.fixture(scope="module")
def celery_ingest(embedded_admin_url: str, chaffee_home: Path, tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("celery")
    warehouse = new_database(embedded_admin_url, "celery_wh")
    dagster_db = new_database(embedded_admin_url, "celery_dagster")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "CHAFFEE_", "DAGSTER_"))}
    with _redis(folder) as broker:
        env = _project_environment(
            {
                **base,
                "CHAFFEE_HOME": str(chaffee_home),
                "DATABASE_URL": warehouse,
                "DAGSTER_PG_URL": dagster_db,
                "HF_HUB_OFFLINE": "1",
                # dagster-celery starts `celery` by name.
                "PATH": f"{VENV_BIN}:{base.get('PATH', '/usr/bin:/bin')}",
                EXECUTOR_CONFIG_ENV: str(CELERY_YAML),
                "CHAFFEE_CELERY_BROKER_URL": broker,
            }
        )
        workers: dict[str, subprocess.Popen] = {}
        logs = {name: folder / f"worker-{name}.log" for name in QUEUES}
        try:
            compose = topology.load_compose()
            # compose.yaml's `migrate`, which the workers wait for: two workers that each create the
            # instance's tables on a fresh database race, and the loser exits.
            migrate = subprocess.run(
                shlex.split(compose["services"]["migrate"]["command"]),
                env=env, cwd=REPO, capture_output=True, text=True, timeout=180,
            )  # fmt: skip
            assert migrate.returncode == 0, migrate.stdout[-2000:] + migrate.stderr[-2000:]
            for name in QUEUES:
                # compose.yaml's command; the environment is `chaffee db env`'s (this machine's instance).
                argv = shlex.split(
                    topology.interpolate(compose["services"][WORKER_SERVICES[name]]["command"], {})
                )
                workers[name] = subprocess.Popen(
                    argv, env=env, cwd=REPO, stdout=logs[name].open("w"), stderr=subprocess.STDOUT,
                    start_new_session=True,
                )  # fmt: skip
            _wait_for_workers(env, list(QUEUES), logs)
            ingest = subprocess.run(
                [chaffee_command(), "ingest", "--library", str(SAMPLE)],
                env=env, cwd=REPO, capture_output=True, text=True, timeout=600,
            )  # fmt: skip
            worker_pids = {name: _process_tree(process.pid) for name, process in workers.items()}
            yield {
                "ingest": ingest,
                "worker_pids": worker_pids,
                "dagster_db": dagster_db,
                "warehouse": warehouse,
                "logs": {name: path.read_text() for name, path in logs.items()},
            }
        finally:
            for process in workers.values():
                _stop(process)


def _process_tree(pid: int) -> set[int]:
    with contextlib.suppress(psutil.NoSuchProcess):
        parent = psutil.Process(pid)
        return {pid, *(child.pid for child in parent.children(recursive=True))}
    return {pid}


def _wait_for_workers(env: dict[str, str], names: list[str], logs: dict[str, Path]) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if all(" ready." in logs[name].read_text() for name in names):
            return
        time.sleep(1)
    raise AssertionError(
        "Celery workers not ready:\n" + "\n".join(p.read_text()[-2000:] for p in logs.values())
    )


@slow
def test_the_ingest_of_the_sample_library_succeeds_on_the_workers(celery_ingest) -> None:
    ingest = celery_ingest["ingest"]
    assert ingest.returncode == 0, ingest.stdout[-3000:] + ingest.stderr[-3000:] + str(celery_ingest["logs"])
    with psycopg.connect(celery_ingest["warehouse"]) as conn:
        videos, embedded = conn.execute(
            "SELECT (SELECT count(*) FROM videos), (SELECT count(*) FROM segment_embeddings)"
        ).fetchone()
    assert videos == len(list(SAMPLE.glob("*.info.json"))) and embedded > 0


@slow
def test_each_step_ran_in_the_worker_of_its_queue(celery_ingest) -> None:
    with psycopg.connect(celery_ingest["dagster_db"]) as conn:
        rows = conn.execute(
            "SELECT run_id, step_key, event FROM event_logs WHERE dagster_event_type = 'STEP_START'"
        ).fetchall()
    assert rows, "no step started"
    pids = celery_ingest["worker_pids"]
    runs = {run_id for run_id, _, _ in rows}
    for _, step_key, event in rows:
        pid = json.loads(event)["dagster_event"]["pid"]
        expected = "gpu" if step_key.startswith("transcripts") else "cpu"
        assert pid in pids[expected], (step_key, pid, pids)
    steps = {step_key for _, step_key, _ in rows}
    assert {"videos", "transcripts", "segments", "segment_embeddings"} <= steps
    # The steps of a run ran on the workers, not in `chaffee ingest`'s process that ran the run.
    assert len(runs) >= 1 and not (pids["cpu"] & pids["gpu"])


def test_compose_workers_listen_on_the_queues_and_share_the_runs_settings() -> None:
    services = topology.load_compose()["services"]
    for name, queue in QUEUES.items():
        worker = services[WORKER_SERVICES[name]]
        command = shlex.split(worker["command"])
        assert command[command.index("-q") + 1] == queue and "deploy/celery.yaml" in command
        assert worker["profiles"] == ["celery"]
        # A worker runs steps of the code server's runs: it needs every variable they read.
        assert set(services["code-server"]["environment"]) <= set(worker["environment"]), name
        assert worker["environment"]["CHAFFEE_EXECUTOR_CONFIG"] == "deploy/celery.yaml"


def test_a_bad_executor_file_is_one_line_naming_it(tmp_path: Path) -> None:
    bad = tmp_path / "celery.yaml"
    bad.write_text("execution: [celery]\n")
    with pytest.raises(ExecutorConfigError, match=r"celery\.yaml: expected an `execution: config:` block"):
        celery_executor_from_file(bad)
    with pytest.raises(ExecutorConfigError, match="cannot read it"):
        celery_executor_from_file(tmp_path / "missing.yaml")
