"""What an operator sees in Dagster after `chaffee ingest` of a library through `chaffee dev`: the
webserver and daemon as real processes, read through the webserver's GraphQL API (what its pages
show): every day of the calendar filled, one lineage, and runs named `ingest_job`.

The partition calendar starts on 2024-01-01 here (CHAFFEE_START_DATE), so marking its empty days
stays cheap; Dagster's storage is a database of its own, so the figures are this ingest's alone.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from chaffee_assets.warehouse.migrate import upgrade
from chaffee_assets_tests.conftest import _fresh_database
from chaffee_assets_tests.test_readme_commands import small_library
from chaffee_assets_tests.web_helpers import chaffee_command, free_port

ASSETS = ("videos", "transcripts", "segments", "segment_embeddings", "speaker_labels")
GROUP = "ask_dr_chaffee"
# One sample video: one run through the daemon (each run is a process that loads torch and the model).
VIDEOS = ("smplMeatDay",)
STARTUP_S = 240  # the webserver, the daemon and a code server import the definitions on a loaded box


@dataclass
class UiAfterIngest:
    graphql_url: str
    ingest: subprocess.CompletedProcess[str]
    ingest_s: float


def graphql(url: str, query: str) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps({"query": query}).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        body = json.load(response)
    assert "errors" not in body, body
    return body["data"]


def wait_for_daemon(url: str, process: subprocess.Popen) -> None:
    """Until the webserver answers and the backfill and run-queue daemons are healthy."""
    deadline = time.monotonic() + STARTUP_S
    query = "{ instance { daemonHealth { allDaemonStatuses { daemonType healthy } } } }"
    while True:
        assert process.poll() is None, "chaffee dev ended"
        try:
            statuses = graphql(url, query)["instance"]["daemonHealth"]["allDaemonStatuses"]
            healthy = {s["daemonType"] for s in statuses if s["healthy"]}
            if {"BACKFILL", "QUEUED_RUN_COORDINATOR"} <= healthy:
                return
        except OSError:
            pass
        assert time.monotonic() < deadline, "the daemon did not come up"
        time.sleep(1)


@pytest.fixture(scope="module")
def ui_after_ingest(
    embedded_admin_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[UiAfterIngest]:
    library = small_library(tmp_path_factory.mktemp("ui") / "library", *VIDEOS)
    warehouse = _fresh_database(embedded_admin_url, "ui")
    upgrade(warehouse)
    env = {
        **os.environ,
        "DATABASE_URL": warehouse,
        "DAGSTER_PG_URL": _fresh_database(embedded_admin_url, "ui_dagster"),
        "CHAFFEE_START_DATE": "2024-01-01",
        "CHAFFEE_LIBRARY_DIR": str(library),
    }
    for key in ("DAGSTER_HOME", "CHAFFEE_DAGSTER_PG_URL"):  # chaffee sets them from the above
        env.pop(key, None)
    port = free_port()
    log = (tmp_path_factory.mktemp("ui_log") / "dev.log").open("w")
    dev = subprocess.Popen(
        [chaffee_command(), "dev", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/graphql"
        wait_for_daemon(url, dev)
        started = time.monotonic()
        ingest = subprocess.run(
            [chaffee_command(), "ingest", "--library", str(library)],
            env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        yield UiAfterIngest(url, ingest, time.monotonic() - started)
    finally:
        os.killpg(dev.pid, signal.SIGINT)
        try:
            dev.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(dev.pid, signal.SIGKILL)
        log.close()


@pytest.mark.slow  # `chaffee dev` and an ingest through its daemon: a few minutes on a loaded box
def test_the_ingest_went_through_the_daemon(ui_after_ingest: UiAfterIngest) -> None:
    out = ui_after_ingest.ingest.stdout
    assert ui_after_ingest.ingest.returncode == 0, out + ui_after_ingest.ingest.stderr
    assert "as one backfill through the running Dagster daemon" in out
    assert "[1/1] 2024-01-15: ok" in out


@pytest.mark.slow
def test_every_day_of_the_calendar_is_filled_after_the_ingest(ui_after_ingest: UiAfterIngest) -> None:
    nodes = graphql(
        ui_after_ingest.graphql_url,
        "{ assetNodes { assetKey { path } groupName partitionStats { numMaterialized numPartitions numFailed } } }",
    )["assetNodes"]
    assert {node["groupName"] for node in nodes} == {GROUP}  # one group: the UI opens one lineage
    stats = {node["assetKey"]["path"][-1]: node["partitionStats"] for node in nodes}
    assert set(stats) == {*ASSETS, "asked_questions_summary"}
    stats = {asset: figures for asset, figures in stats.items() if asset in ASSETS}  # the chain
    for asset, figures in stats.items():
        assert figures["numPartitions"] > 1000, figures  # 2024-01-01 to today
        assert figures["numMaterialized"] == figures["numPartitions"], (asset, figures)
        assert figures["numFailed"] == 0


@pytest.mark.slow
def test_the_ingest_assets_are_one_lineage_in_one_group(ui_after_ingest: UiAfterIngest) -> None:
    nodes = graphql(
        ui_after_ingest.graphql_url,
        "{ assetNodes { assetKey { path } groupName dependencyKeys { path } } }",
    )["assetNodes"]
    assert {node["groupName"] for node in nodes} == {GROUP}
    upstream = {
        node["assetKey"]["path"][-1]: [k["path"][-1] for k in node["dependencyKeys"]]
        for node in nodes
        if node["assetKey"]["path"][-1] in ASSETS
    }
    assert upstream == {
        "videos": [],
        "transcripts": ["videos"],
        "segments": ["transcripts"],
        "segment_embeddings": ["segments"],
        "speaker_labels": ["segments"],
    }


@pytest.mark.slow
def test_runs_the_daemon_launched_are_named_ingest_job(ui_after_ingest: UiAfterIngest) -> None:
    runs = graphql(
        ui_after_ingest.graphql_url,
        "{ runsOrError { ... on Runs { results { jobName status tags { key value } } } } }",
    )["runsOrError"]["results"]
    assert len(runs) == 1
    assert {run["jobName"] for run in runs} == {"ingest_job"}
    assert {run["status"] for run in runs} == {"SUCCESS"}
    for run in runs:
        assert "dagster/backfill" in {tag["key"] for tag in run["tags"]}


@pytest.mark.slow
def test_the_ui_pages_read_100_percent_filled_one_group_and_ingest_job(
    ui_after_ingest: UiAfterIngest, tmp_path: Path
) -> None:
    """The same facts as the operator reads them: the UI's pages in Debian's chromium."""
    from playwright.sync_api import sync_playwright

    from chaffee_assets_tests.test_web_browser import CHROMIUM, CHROMIUM_FLAGS, _require_chromium

    _require_chromium()
    base = ui_after_ingest.graphql_url.removesuffix("/graphql")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.goto(f"{base}/asset-groups/ask_dr_chaffee", timeout=120_000)
            try:
                page.get_by_text("100% filled").nth(len(ASSETS) - 1).wait_for(timeout=120_000)
            finally:
                (tmp_path / "lineage.txt").write_text(page.inner_text("body"))
            lineage = page.inner_text("body")
            for asset in ASSETS:
                assert asset in lineage
            # The chain's five are full; the audience's daily summary (nobody asked here) is not.
            assert lineage.count("100% filled") == len(ASSETS) and "asked_questions_summary" in lineage
            page.goto(f"{base}/runs", timeout=120_000)
            page.get_by_text("ingest_job").first.wait_for(timeout=120_000)
            runs = page.inner_text("body")
            assert "__ASSET_JOB" not in runs
        finally:
            browser.close()
