"""The README's commands, run the way a user runs them: the installed `chaffee` in a subprocess, the
user's environment, the real embedded PostgreSQL, and `chaffee dev`'s UI spoken to over HTTP.

Covers `chaffee ingest`, `chaffee demo`, `chaffee dev` and `chaffee db …` (the search, eval, captions and
transcribe commands have their own modules).
"""

from __future__ import annotations

import contextlib
import json
import os
import pty
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import dagster as dg
import psycopg
import pytest
from dagster_graphql import DagsterGraphQLClient

from chaffee_assets.ingest_runner import group_days
from chaffee_assets.settings import PROJECT_ROOT, SAMPLE_LIBRARY

CHAFFEE = str(Path(sys.executable).parent / "chaffee")
# Runtime files Dagster writes into its home; none may appear in the checkout.
DAGSTER_RUNTIME_NAMES = (
    ".nux",
    ".telemetry",
    ".logs_queue",
    "history",
    "storage",
    "logs",
    "schedules",
    "compute_logs",
)
REEXECUTE = """
mutation ($parentRunId: String!) {
  launchRunReexecution(reexecutionParams: {parentRunId: $parentRunId, strategy: ALL_STEPS}) {
    __typename
    ... on LaunchRunSuccess { run { runId jobName status } }
    ... on PythonError { message }
    ... on PipelineNotFoundError { message }
  }
}
"""


def user_env(**extra: str) -> dict[str, str]:
    """The environment a user's shell has: no DATABASE_URL (the embedded server), CHAFFEE_HOME from the suite."""
    unset = (
        "DATABASE_URL",
        "DAGSTER_HOME",
        "DAGSTER_PG_URL",
        "CHAFFEE_LIBRARY_DIR",
        "CHAFFEE_GOLDEN_QUERIES",
    )
    env = {k: v for k, v in os.environ.items() if k not in unset}
    return {**env, **extra}


def chaffee(
    *args: str, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHAFFEE, *args], env=env or user_env(), stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def small_library(folder: Path, *video_ids: str) -> Path:
    """Some of the sample library's videos in a folder of their own."""
    folder.mkdir(parents=True, exist_ok=True)
    for video_id in video_ids:
        for path in SAMPLE_LIBRARY.glob(f"{video_id}.*"):
            shutil.copy(path, folder / path.name)
    return folder


def checkout_runtime_files() -> dict[str, float]:
    return {
        name: (PROJECT_ROOT / name).stat().st_mtime
        for name in DAGSTER_RUNTIME_NAMES
        if (PROJECT_ROOT / name).exists()
    }


# --- chaffee ingest, from a terminal with no daemon -------------------------------------------------

# Uploads weeks apart: a run costs less than the empty days between them, so each day is its own
# run (2024-01-15, 2024-02-12, 2024-05-13), though two would fit the 31-day backfill policy.
THREE_DAY_VIDEOS = ("smplMeatDay", "smplLDL_hrt", "smplKetoWk1")


@pytest.fixture(scope="module")
def piped_ingest(chaffee_home, tmp_path_factory):
    library = small_library(tmp_path_factory.mktemp("ingest") / "library", *THREE_DAY_VIDEOS)
    before = checkout_runtime_files()
    result = chaffee("ingest", "--library", str(library))
    return {"result": result, "library": library, "runtime_files_before": before}


def test_ingest_prints_plain_progress_a_summary_and_the_checks_when_not_on_a_terminal(piped_ingest):
    result = piped_ingest["result"]
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "3 run(s) of ingest_job of up to 31 days, in this process" in out
    assert "[1/3] 2024-01-15: ok — 1 video(s), 1 transcript(s)" in out
    assert "[2/3] 2024-02-12: ok — 1 video(s), 1 transcript(s)" in out
    assert "[3/3] 2024-05-13: ok — 1 video(s), 1 transcript(s)" in out
    assert "summary for 2024-01-15 … 2024-05-13" in out and "videos:       3" in out
    assert "checks:" in out and "passed (3 day(s))" in out
    assert "golden queries: skipped, no golden-queries file" in out
    assert "\r" not in out and "\x1b" not in out  # plain lines for a file or a pipe
    assert "Warning" not in result.stderr, result.stderr


def test_search_from_a_shell_embeds_the_question_without_importing_torch(piped_ingest):
    """A hybrid `chaffee search` pays for ONNX Runtime, not a deep learning framework (the ingest
    left the model's ONNX export under CHAFFEE_HOME): Python's own import log shows what loaded."""
    result = chaffee("search", "seed oils", "-k", "3", env=user_env(PYTHONPROFILEIMPORTTIME="1"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "https://www.youtube.com/watch?v=" in result.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    assert "onnxruntime" in imported
    assert not {"torch", "sentence_transformers", "transformers"} & imported, sorted(imported)


def test_ingest_runs_are_the_code_location_s_job_and_the_ui_can_re_execute_them(piped_ingest):
    from dagster._core.storage.dagster_run import RunsFilter
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget
    from dagster_graphql.test.utils import execute_dagster_graphql

    from chaffee_assets.dagster_instance import project_instance

    assert piped_ingest["result"].returncode == 0
    library = str(piped_ingest["library"])
    with project_instance() as instance:
        runs = [
            run
            for run in instance.get_runs(RunsFilter(job_name="ingest_job"))
            if run.run_config.get("resources", {})
            .get("video_source", {})
            .get("config", {})
            .get("library_dir")
            == library
        ]
        assert len(runs) == 3
        assert all(run.status == dg.DagsterRunStatus.SUCCESS for run in runs)
        assert {
            (run.tags["dagster/asset_partition_range_start"], run.tags["dagster/asset_partition_range_end"])
            for run in runs
        } == {(day, day) for day in ("2024-01-15", "2024-02-12", "2024-05-13")}
        # What the UI's Re-execute button asks of the webserver, on the workspace the UI loads.
        target = WorkspaceFileTarget(paths=[str(PROJECT_ROOT / "workspace.yaml")])
        with WorkspaceProcessContext(instance, target) as workspace:
            answer = execute_dagster_graphql(
                workspace.create_request_context(), REEXECUTE, variables={"parentRunId": runs[0].run_id}
            )
        outcome = answer.data["launchRunReexecution"]
        assert outcome["__typename"] == "LaunchRunSuccess", outcome
        assert outcome["run"]["jobName"] == "ingest_job"
        child = instance.get_run_by_id(outcome["run"]["runId"])
        assert child.parent_run_id == runs[0].run_id
        assert child.run_config == runs[0].run_config  # the same library, read again
        instance.delete_run(child.run_id)  # queued for a daemon this test does not start


def test_ingest_writes_no_dagster_file_into_the_checkout(piped_ingest, chaffee_home):
    assert piped_ingest["result"].returncode == 0
    assert checkout_runtime_files() == piped_ingest["runtime_files_before"]
    assert (chaffee_home / "dagster" / "dagster.yaml").is_file()


def test_ingest_writes_a_run_s_materialisations_of_each_asset_in_one_insert(chaffee_home, tmp_path):
    """Videos three days apart make one run over four days, and every asset records a
    materialisation for each day: the command batches each step's, so they share a transaction."""
    from chaffee_assets.dagster_instance import project_instance

    library = small_library(tmp_path / "library", "smplMeatDay", "smplLDL_hrt")
    moved = library / "smplLDL_hrt.info.json"  # from 2024-02-12 to three days after the other
    info = json.loads(moved.read_text(encoding="utf-8"))
    info.update(upload_date="20240118", timestamp=1705579200)  # 2024-01-18 12:00 UTC
    moved.write_text(json.dumps(info), encoding="utf-8")
    result = chaffee("ingest", "--library", str(library))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[1/1] 2024-01-15…2024-01-18: ok — 2 video(s), 2 transcript(s)" in result.stdout
    with project_instance() as instance:
        url = instance.event_log_storage.postgres_url.replace("postgresql+psycopg2://", "postgresql://")
    with psycopg.connect(url) as conn:
        (run_id,) = conn.execute(
            "SELECT run_id FROM runs WHERE run_body LIKE %s ORDER BY create_timestamp DESC LIMIT 1",
            (f"%{library}%",),
        ).fetchone()
        per_asset = conn.execute(
            """SELECT asset_key, count(*), count(DISTINCT xmin::text) FROM event_logs
               WHERE run_id = %s AND dagster_event_type = 'ASSET_MATERIALIZATION' GROUP BY asset_key""",
            (run_id,),
        ).fetchall()
    assert len(per_asset) == 5, per_asset  # videos, transcripts, segments, embeddings, speaker labels
    # Four days of each asset, written by one transaction each (one per event without batching).
    assert {(days, transactions) for _, days, transactions in per_asset} == {(4, 1)}, per_asset


def test_ingest_on_a_terminal_shows_live_progress_with_an_estimate(chaffee_home, tmp_path):
    library = small_library(tmp_path / "library", "smplSeedOil")
    primary, secondary = pty.openpty()
    process = subprocess.Popen(
        [CHAFFEE, "ingest", "--library", str(library)], env=user_env(), stdin=subprocess.DEVNULL,
        stdout=secondary, stderr=secondary, close_fds=True,
    )  # fmt: skip
    os.close(secondary)
    screen = b""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        ready, _, _ = select.select([primary], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # the terminal closed: the command has exited
                break
            if not chunk:
                break
            screen += chunk
        elif process.poll() is not None:
            break
    os.close(primary)
    assert process.wait(timeout=60) == 0, screen.decode(errors="replace")
    text = screen.decode(errors="replace")
    redraws = [line for line in text.split("\r") if line.startswith("\x1b[Krun ")]
    assert redraws, text
    live = redraws[-1]
    for figure in ("days ", "videos ", "segments ", "embeddings ", "elapsed"):
        assert figure in live, live
    assert any("left" in line for line in redraws), redraws
    assert "[1/1] 2024-04-08: ok — 1 video(s), 1 transcript(s)" in text


# --- make demo (chaffee demo) --------------------------------------------------------------------------------


def sample_library_days():
    from chaffee_assets.ingest.library import LibrarySource

    return sorted(LibrarySource(SAMPLE_LIBRARY).publish_dates())


def test_make_demo_ingests_checks_searches_and_ends_by_serving_the_page(chaffee_home):
    """The README's first command, exactly: make installs what is missing (nothing, here), then
    `chaffee demo` ingests the sample library, checks it, searches it and serves the page on it."""
    from chaffee_assets_tests.web_helpers import chaffee_serve

    argv = lambda port: ["make", "--no-print-directory", "demo", f"PORT={port}"]  # noqa: E731
    with chaffee_serve(user_env(), argv=argv, startup_s=900) as server:
        status, _, body = server.get("/?q=why+avoid+vegetable+oils")
        hits = json.loads(server.get("/api/search?q=why+avoid+vegetable+oils")[2])["hits"]
    out = "".join(server.output)
    assert f"{len(group_days(sample_library_days()))} run(s) of ingest_job of up to 31 days" in out
    checks = next(line for line in out.splitlines() if "checks:" in line)
    passed, total = checks.split("checks:")[1].split(" passed")[0].split(" of ")
    assert passed.strip() == total.strip() and int(total) > 0
    assert "golden queries: skipped" not in out  # the sample library carries its own file
    # Who speaks: the talks' synthesised voices, the host enrolled from his, the guest told apart.
    assert "speakers: enrolled Dr Anthony Chaffee as the host from his synthesised voice" in out
    shares_line = next(line for line in out.splitlines() if line.startswith("the host's share of each talk"))
    shares = dict(item.rsplit(" ", 1) for item in shares_line.split(": ", 1)[1].split(", "))
    assert shares["smplMeatDay"] == "100%" and shares["smplSeedOil"] == "100%"
    assert 10 <= int(shares["smplGuestRA"].rstrip("%")) <= 60  # Rachel speaks most of her story
    assert "(a guest or caller speaks here, not the host)" in out
    assert out.count("$ chaffee search") == 3
    assert out.count("https://www.youtube.com/watch?v=") >= 3
    assert status == 200 and "Seed Oils vs Animal Fats" in body.decode()
    assert hits and hits[0]["video_id"] == "smplSeedOil"
    assert "Dagster UI:        make dev" in out
    assert f"Search page: {server.base_url}/" in out
    # Ctrl-C stops it cleanly. make itself always ends by re-raising the SIGINT it received (exactly as
    # at a terminal), so the clean stop is read from what the server printed, not make's status.
    assert server.process.returncode in (0, -signal.SIGINT)
    assert "Application shutdown complete" in out and "Traceback" not in out


# --- chaffee db ----------------------------------------------------------------------------------


def test_db_commands_on_their_own_embedded_server(tmp_path):
    home = tmp_path / "home"
    env = user_env(CHAFFEE_HOME=str(home))
    try:
        upgraded = chaffee("db", "upgrade", env=env)
        assert upgraded.returncode == 0, upgraded.stderr
        assert "applied 0001_initial.sql" in upgraded.stdout
        assert chaffee("db", "upgrade", env=env).stdout.startswith("schema is up to date")
        status = chaffee("db", "status", env=env)
        assert "(embedded)" in status.stdout and "PENDING" not in status.stdout and "videos" in status.stdout
        url = chaffee("db", "url", env=env).stdout.strip()
        dagster_url = chaffee("db", "url", "--dagster", env=env).stdout.strip()
        assert str(home) in url and "/chaffee?" in url and "/dagster?" in dagster_url
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] > 0
    finally:
        stopped = chaffee("db", "stop", env=env)
    assert stopped.stdout.strip() == "embedded server stopped"
    assert chaffee("db", "stop", env=env).returncode == 0


def test_db_env_points_dagster_at_an_instance_home_under_chaffee_home(chaffee_home):
    before = checkout_runtime_files()
    script = 'eval "$(chaffee db env)" && echo "home=$DAGSTER_HOME" && dagster instance info'
    shell = subprocess.run(
        ["bash", "-c", script], env=user_env(PATH=f"{Path(CHAFFEE).parent}:{os.environ['PATH']}"),
        capture_output=True, text=True, timeout=300, cwd=PROJECT_ROOT,
    )  # fmt: skip
    assert shell.returncode == 0, shell.stderr
    home = chaffee_home / "dagster"
    assert f"home={home}\n" in shell.stdout
    assert (
        "run_storage:\n  module: chaffee_assets.dagster_storage\n  class: KeptConnectionsRunStorage"
        in shell.stdout
    )
    assert (
        "event_log_storage:\n  module: chaffee_assets.dagster_storage\n  class: KeptConnectionsEventLogStorage"
        in shell.stdout
    )
    copy = (home / "dagster.yaml").read_text()
    assert copy.endswith((PROJECT_ROOT / "dagster.yaml").read_text())  # the documented file, copied
    assert checkout_runtime_files() == before


# --- chaffee dev ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _session_alive(session_id: int) -> bool:
    try:
        os.killpg(session_id, 0)
    except ProcessLookupError:
        return False
    return True


def _graphql(port: int, query: str, variables: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


class DevServer:
    def __init__(self, process: subprocess.Popen, port: int) -> None:
        self.process = process
        self.port = port
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)


@pytest.fixture(scope="module")
def dev(chaffee_home):
    port = _free_port()
    env = user_env(CHAFFEE_LIBRARY_DIR=str(SAMPLE_LIBRARY))  # a library deployment: no network needed
    before = checkout_runtime_files()
    # Started the way a shell starts a background job, with SIGINT ignored: the teardown's Ctrl-C
    # must still stop it cleanly (chaffee dev installs its own handler).
    process = subprocess.Popen(
        [CHAFFEE, "dev", "--port", str(port)], env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )  # fmt: skip
    server = DevServer(process, port)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if _graphql(port, "{ version }")["data"]["version"]:
                    break
            except OSError:
                time.sleep(1)
        assert process.poll() is None, server.output
        server.runtime_files_before = before
        yield server
    finally:
        with contextlib.suppress(ProcessLookupError):  # it may have exited already (a failed start)
            os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            raise
    # Nothing was left behind: no process of its session, nothing listening on the port.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _session_alive(process.pid):
        time.sleep(0.5)
    assert not _session_alive(process.pid)
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0


def test_dev_keeps_the_instance_and_the_ui_s_files_under_chaffee_home(dev, chaffee_home):
    home = chaffee_home / "dagster"
    assert f"(instance: {home}/dagster.yaml)" in dev.output
    # The UI records a first visit the way the browser does; the file goes to the instance home.
    assert _graphql(dev.port, "mutation { setNuxSeen }")["data"]["setNuxSeen"]
    assert (home / ".nux" / "nux.yaml").is_file()
    assert checkout_runtime_files() == dev.runtime_files_before


def test_dev_runs_a_partition_launched_from_the_ui(dev, chaffee_home):
    from chaffee_assets.warehouse.server import WAREHOUSE_DATABASE, embedded_server_uri

    day = "2024-02-12"  # the day of one sample-library video
    client = DagsterGraphQLClient("127.0.0.1", port_number=dev.port)
    # The whole path an operator's click takes: queued run → daemon → run worker on dagster.yaml.
    run_id = client.submit_job_execution("ingest_job", tags={"dagster/partition": day})
    status = None
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        status = client.get_run_status(run_id)
        if status in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED):
            break
        time.sleep(2)
    assert status == dg.DagsterRunStatus.SUCCESS
    with psycopg.connect(embedded_server_uri(WAREHOUSE_DATABASE)) as conn:
        written = conn.execute(
            "SELECT count(*) FROM segment_embeddings e JOIN segments s USING (segment_id) "
            "JOIN videos v USING (video_id) WHERE v.partition_date = %s",
            (day,),
        ).fetchone()[0]
    assert written > 0


def test_ingest_goes_through_the_daemon_as_a_backfill_while_dev_runs(dev, tmp_path):
    from dagster._core.storage.dagster_run import RunsFilter

    from chaffee_assets.dagster_instance import project_instance

    library = small_library(tmp_path / "library", "smplGuestRA", "smplSeedOil")
    result = chaffee("ingest", "--library", str(library))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "as one backfill through the running Dagster daemon" in result.stdout
    assert "the daemon did not pick the backfill up" not in result.stdout
    assert "[2/2]" in result.stdout and "summary for 2024-04-08 … 2024-06-17" in result.stdout
    with project_instance() as instance:
        backfill_runs = [
            run
            # A backfill of the job: its runs are `ingest_job`'s, like the command's own.
            for run in instance.get_runs(RunsFilter(job_name="ingest_job"))
            if run.tags.get("dagster/backfill")
            and run.run_config["resources"]["video_source"]["config"]["library_dir"] == str(library)
        ]
    assert len(backfill_runs) == 2 and all(r.status == dg.DagsterRunStatus.SUCCESS for r in backfill_runs)


def test_dev_says_in_one_line_that_alerts_are_off_when_none_is_configured(dev):
    off = [line for line in dev.lines if line.startswith("alerts: off")]
    assert len(off) == 1 and "CHAFFEE_ALERT_WEBHOOK_URL" in off[0], dev.output


def test_dev_repeats_no_dagster_beta_or_supersession_notice(dev):
    # Checked last in the module, after the runs above had their chance to print.
    noise = [
        line
        for line in dev.lines
        if "BetaWarning" in line
        or "PreviewWarning" in line
        or "SupersessionWarning" in line
        or "Found a dagster instance configuration" in line
    ]
    assert noise == [], "".join(noise)
