"""After a move, Dagster knows what moved: the restored days show as materialised in the new
instance, and re-running one spends nothing with OpenAI (the stand-in endpoint counts the calls)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from chaffee_assets.defs.resources import video_source_config
from chaffee_assets.ingest_runner import ingest_days
from chaffee_assets.moved_partitions import report_held_partitions
from chaffee_assets.settings import settings
from chaffee_assets.warehouse.migrate import upgrade
from chaffee_assets.warehouse.transfer import dump

from . import second_postgres as second_server
from .conftest import _fresh_database
from .speech_samples import speech
from .test_transcription_openai import FakeTranscriptionServer

second_postgres = second_server.second_postgres  # the session fixture

CHAFFEE = str(Path(sys.executable).parent / "chaffee")
DAY = date(2024, 1, 5)
OTHER_DAY = date(2024, 2, 9)
ASSETS = ("videos", "transcripts", "segments", "segment_embeddings", "speaker_labels")
OPENAI = {"chaffee/asr_engine": "openai"}
DEFAULT_MODEL = "all-MiniLM-L6-v2"
CAPTIONS = (
    "WEBVTT\n\n00:00:01.000 --> 00:00:04.000\nMeat is the most nutrient dense food.\n\n"
    "00:00:04.000 --> 00:00:09.000\nLDL is not the villain it was made out to be.\n"
)


def _library(folder: Path) -> Path:
    """Two days: on DAY a talk with no captions (only its audio: speech recognition) and one with
    captions; on OTHER_DAY one with captions."""
    folder.mkdir()
    for video_id, day, duration in (
        ("audioOnly01", DAY, 11),
        ("captioned01", DAY, 10),
        ("captioned02", OTHER_DAY, 10),
    ):
        info = {"id": video_id, "title": f"Talk {video_id}", "upload_date": day.strftime("%Y%m%d"),
                "duration": duration, "webpage_url": f"https://www.youtube.com/watch?v={video_id}", "_type": "video"}  # fmt: skip
        (folder / f"{video_id}.info.json").write_text(json.dumps(info))
        if video_id.startswith("captioned"):
            (folder / f"{video_id}.en.vtt").write_text(CAPTIONS)
    shutil.copyfile(speech("whisper/jfk.flac"), folder / "audioOnly01.flac")
    return folder


@pytest.fixture
def openai_stand_in(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTranscriptionServer]:
    fake = FakeTranscriptionServer()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key")
    monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
    yield fake
    fake.close()


@pytest.fixture
def kept_environment() -> Iterator[None]:
    """Loading the project's instance writes DAGSTER_HOME and the storage URLs into os.environ."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def _asr_spend(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM asr_spend").fetchone()[0]


@pytest.mark.slow  # two runs of the whole asset graph through Dagster, and a restore between servers
def test_restored_days_show_as_materialised_and_a_rerun_pays_openai_nothing(
    openai_stand_in: FakeTranscriptionServer,
    second_postgres: second_server.SecondServer,
    embedded_admin_url: str,
    tmp_path: Path,
    kept_environment: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    library = _library(tmp_path / "library")
    run_config = {
        "resources": {"video_source": {"config": video_source_config(settings(), library_dir=str(library))}}
    }
    # The GPU machine: its warehouse on the embedded server, its own Dagster instance.
    source = _fresh_database(embedded_admin_url, "gpubox")
    upgrade(source)
    monkeypatch.setenv("DATABASE_URL", source)
    with dg.instance_for_test() as gpu_instance:
        first = ingest_days([DAY, OTHER_DAY], instance=gpu_instance, run_config=run_config, tags=OPENAI)
    assert not first.failed
    assert len(openai_stand_in.uploads) == 1 and _asr_spend(source) == 1
    dump_file = dump(tmp_path / "warehouse.dump", source).path

    # Production: a managed server reached as a role that is not superuser, Dagster's storage beside it.
    target = second_postgres.new_database("prod")
    dagster_storage = second_postgres.new_database("prod_dagster", with_vector=False)
    production = {
        "DATABASE_URL": target,
        "DAGSTER_PG_URL": dagster_storage,
        "CHAFFEE_HOME": str(tmp_path / "prod"),
    }
    restored = subprocess.run(
        [CHAFFEE, "db", "restore", str(dump_file)],
        capture_output=True, text=True, timeout=300, env={**os.environ, **production},
    )  # fmt: skip
    assert restored.returncode == 0, restored.stderr
    for asset in ASSETS:
        assert re.search(rf"dagster: {asset}\s+2 days held,\s+2 reported as materialised", restored.stdout)

    for key, value in production.items():
        monkeypatch.setenv(key, value)
    from chaffee_assets.dagster_instance import project_instance

    instance = project_instance()
    for asset in ASSETS:
        assert instance.get_materialized_partitions(dg.AssetKey(asset)) == {
            DAY.isoformat(),
            OTHER_DAY.isoformat(),
        }

    # A re-run of the moved day on production, OpenAI forced as the daily runs would use it.
    again = ingest_days([DAY], instance=instance, run_config=run_config, tags=OPENAI)

    assert not again.failed
    assert len(openai_stand_in.uploads) == 1  # the one call made on the GPU machine, none since
    assert _asr_spend(target) == 1
    with psycopg.connect(target) as conn:
        sources = dict(conn.execute("SELECT video_id, source FROM transcripts WHERE is_current").fetchall())
    assert sources["audioOnly01"] == "openai"

    # Reporting again finds everything already materialised: nothing is recorded twice.
    with psycopg.connect(target) as conn:
        repeated = report_held_partitions(instance, conn, model=DEFAULT_MODEL)
    assert {(r.asset, r.days_held, r.reported, r.already_materialised) for r in repeated} == {
        (asset, 2, 0, 2) for asset in ASSETS
    }
