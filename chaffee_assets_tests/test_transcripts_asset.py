"""Transcript versions, failure records, and the `transcripts` asset choosing captions or speech recognition."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from chaffee_assets.definitions import INGEST_ASSETS, build_resources
from chaffee_assets.defs.resources import VideoSourceResource
from chaffee_assets.defs.transcription_resources import LocalWhisperResource, OpenAIWhisperResource
from chaffee_assets.ingest import store
from chaffee_assets.ingest.cues import Cue
from chaffee_assets.ingest.library import LibrarySource
from chaffee_assets.ingest.outcomes import FailureClass, TranscriptFailure
from chaffee_assets.ingest.transcript_pipeline import TranscriptRules, obtain_transcript
from chaffee_assets.ingest.videos import Video
from chaffee_assets.warehouse import connect

from .speech_samples import speech
from .whisper_tiny import tiny_whisper_model  # noqa: F401 - session fixture

CUES = [Cue(0.0, 2.0, "Hello there."), Cue(2.0, 4.5, "Meat is nutrient dense.")]


def _video(video_id: str = "vid00000001", published_at: datetime | None = None) -> Video:
    return Video(video_id, "library", f"Title {video_id}", published_at or datetime(2024, 1, 2, tzinfo=UTC))


@pytest.fixture
def conn(warehouse_url: str):
    with connect(warehouse_url, autocommit=True) as connection:
        yield connection


def test_a_different_transcript_becomes_a_new_current_version_and_the_old_one_is_kept(conn):
    store.upsert_videos(conn, [_video()])
    first = store.write_transcript(conn, "vid00000001", CUES, source="auto_captions", language="en")
    second = store.write_transcript(conn, "vid00000001", CUES[:1], source="manual_captions", language="en")
    rows = conn.execute("SELECT version, is_current, source FROM transcripts ORDER BY version").fetchall()
    assert (first.version, second.version, second.replaced) == (1, 2, True)
    assert rows == [(1, False, "auto_captions"), (2, True, "manual_captions")]


def test_writing_the_same_transcript_again_creates_no_version(conn):
    store.upsert_videos(conn, [_video()])
    first = store.write_transcript(conn, "vid00000001", CUES, source="library_file", language="en")
    again = store.write_transcript(conn, "vid00000001", CUES, source="library_file", language="en")
    assert again.transcript_id == first.transcript_id
    assert conn.execute("SELECT count(*) FROM transcripts").fetchone()[0] == 1


def test_a_failure_is_replaced_by_the_next_one_and_cleared_by_a_transcript(conn):
    store.upsert_videos(conn, [_video()])
    store.record_failure(conn, "vid00000001", TranscriptFailure(FailureClass.BLOCKED, "HTTP 429"))
    store.record_failure(conn, "vid00000001", TranscriptFailure(FailureClass.TOO_NEW, "wait"))
    assert conn.execute("SELECT failure_class, attempts FROM transcript_attempts").fetchone() == (
        "too_new",
        2,
    )
    store.write_transcript(conn, "vid00000001", CUES, source="openai", language="en")
    assert conn.execute("SELECT count(*) FROM transcript_attempts").fetchone()[0] == 0


def test_only_a_better_source_replaces_the_current_transcript():
    current = store.CurrentTranscript(1, 1, "local_whisper", 10)
    assert store.is_improvement("manual_captions", current)
    assert not store.is_improvement("auto_captions", current)
    assert not store.is_improvement("openai", current)
    assert store.is_improvement("auto_captions", None)


class _NoCaptionsSource:
    """A source whose videos have no captions and no audio: the pipeline must classify, not crash."""

    name = "library"

    def fetch_captions(self, video):
        raise TranscriptFailure(FailureClass.NO_CAPTIONS, f"{video.video_id} has no captions")

    def fetch_audio(self, video, dest_dir):
        raise AssertionError("a too-new video must not reach speech recognition")


def test_a_new_video_without_captions_waits_instead_of_paying_for_recognition(conn):
    now = datetime(2024, 1, 2, 12, tzinfo=UTC)
    video = _video(published_at=now - timedelta(hours=3))
    store.upsert_videos(conn, [video])
    outcome = obtain_transcript(
        conn, video, _NoCaptionsSource(), lambda: pytest.fail("no engine may be asked"), now=now,
        rules=TranscriptRules(caption_wait=timedelta(hours=48)),
    )  # fmt: skip
    row = conn.execute("SELECT failure_class, retry_after FROM transcript_attempts").fetchone()
    assert outcome.status == "too_new"
    assert row == ("too_new", video.published_at + timedelta(hours=48))


def _library_with_speech_only(tmp_path: Path, upload_date: str) -> Path:
    library = tmp_path / "library"
    library.mkdir()
    info = {
        "id": "speech00001",
        "title": "A talk with no captions",
        "upload_date": upload_date,
        "duration": 4,
    }
    (library / "speech00001.info.json").write_text(json.dumps(info))
    shutil.copy(speech("deepspeech/new-home-in-the-stars-16k.wav"), library / "speech00001.wav")
    return library


def test_an_old_video_without_captions_is_transcribed_by_local_whisper_through_dagster(
    tmp_path,
    warehouse_url,
    tiny_whisper_model,  # noqa: F811
):
    library = _library_with_speech_only(tmp_path, "20230110")
    resources = {
        **build_resources(video_source=VideoSourceResource(library_dir=str(library))),
        "local_whisper": LocalWhisperResource(
            model=str(tiny_whisper_model), device="cpu", local_files_only=True
        ),
        "openai_whisper": OpenAIWhisperResource(api_key=None, base_url="http://127.0.0.1:9"),
    }
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            INGEST_ASSETS[:2],
            resources=resources,
            partition_key="2023-01-10",
            instance=instance,
        )
    assert result.success
    with psycopg.connect(warehouse_url) as db:
        row = db.execute(
            "SELECT source, model, audio_seconds, cost_usd, cue_count FROM transcripts WHERE is_current"
        ).fetchone()
        attempts = db.execute("SELECT failure_class, message FROM transcript_attempts").fetchall()
    # The tiny model's words are nonsense, but they are words: a transcript with provenance is stored.
    assert attempts == []
    assert row[0] == "local_whisper" and row[1] and float(row[3]) == 0.0
    assert 0 < row[2] <= 4.0 and row[4] >= 1


def test_a_new_video_without_captions_and_no_openai_key_is_recorded_as_engine_unavailable(
    tmp_path, warehouse_url, monkeypatch
):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    yesterday = (datetime.now(UTC) - timedelta(days=3)).strftime("%Y%m%d")
    library = _library_with_speech_only(tmp_path, yesterday)
    resources = build_resources(video_source=VideoSourceResource(library_dir=str(library)))
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            INGEST_ASSETS[:2],
            resources=resources,
            partition_key=f"{yesterday[:4]}-{yesterday[4:6]}-{yesterday[6:]}",
            instance=instance,
            run_config={"ops": {"transcripts": {"config": {"caption_wait_hours": 1.0}}}},
        )
    assert result.success
    with psycopg.connect(warehouse_url) as db:
        attempts = db.execute("SELECT failure_class, message FROM transcript_attempts").fetchall()
        spend = db.execute("SELECT count(*) FROM asr_spend").fetchone()[0]
    assert [a[0] for a in attempts] == ["engine_unavailable"]
    assert "OPENAI_API_KEY" in attempts[0][1]
    assert spend == 0


def test_the_library_source_lists_the_speech_only_video(tmp_path):
    library = _library_with_speech_only(tmp_path, "20230110")
    assert [v.video_id for v in LibrarySource(library).videos_published_on(datetime(2023, 1, 10).date())] == [
        "speech00001"
    ]
