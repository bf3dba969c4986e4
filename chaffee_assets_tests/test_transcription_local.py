"""Local Whisper through faster-whisper on a tiny random-weight model the suite builds, on real speech.

The text is nonsense (random weights); loading, decoding, VAD, batching, timestamps, the worker
process and storage are real.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import ctranslate2
import psycopg
import pytest

from chaffee_assets.ingest import store
from chaffee_assets.ingest.outcomes import FailureClass, TranscriptFailure
from chaffee_assets.transcription.audio import duration_seconds
from chaffee_assets.transcription.local_whisper import LocalWhisperSettings, LocalWhisperTranscriber
from chaffee_assets_tests import whisper_tiny
from chaffee_assets_tests.speech_samples import speech

tiny_whisper_model = whisper_tiny.tiny_whisper_model  # the session fixture that builds the model


@pytest.fixture
def transcriber(tiny_whisper_model: Path):
    with LocalWhisperTranscriber(LocalWhisperSettings(model=str(tiny_whisper_model), device="cpu")) as engine:
        yield engine


@pytest.mark.parametrize(
    "name", ["whisper/jfk.flac", "faster-whisper/stereo_diarization.wav", "faster-whisper/hotwords.mp3"]
)
def test_segments_are_ordered_and_inside_the_audio(transcriber: LocalWhisperTranscriber, name: str) -> None:
    audio = speech(name)
    result = transcriber.transcribe(audio, video_id="clip")

    duration = duration_seconds(audio)
    assert result.cues, "VAD found speech, so there is at least one segment"
    assert result.audio_seconds == pytest.approx(duration, abs=0.01)
    for cue in result.cues:
        assert 0 <= cue.start <= cue.end <= duration, cue
        assert cue.text.strip()
    assert [c.start for c in result.cues] == sorted(c.start for c in result.cues)
    assert (result.engine, result.cost_usd) == ("local_whisper", 0.0)


def test_transcript_is_stored_with_provenance(
    transcriber: LocalWhisperTranscriber,
    tiny_whisper_model: Path,
    warehouse_url: str,
) -> None:
    result = transcriber.transcribe(speech("whisper/jfk.flac"), video_id="jfk")
    with psycopg.connect(warehouse_url) as conn:
        conn.execute(
            "INSERT INTO videos (video_id, source, title, url) VALUES ('jfk', 'library', 'JFK', 'u')"
        )
        conn.commit()
        store.write_transcript(
            conn,
            "jfk",
            result.cues,
            source=result.engine,
            language=result.language,
            model=result.model,
            audio_seconds=result.audio_seconds,
            cost_usd=result.cost_usd,
        )
        row = conn.execute(
            "SELECT source, model, language, audio_seconds, cost_usd, cue_count, cues->0->>'start'"
            " FROM transcripts WHERE video_id = 'jfk' AND is_current"
        ).fetchone()
    assert row[0] == "local_whisper"
    assert row[1] == tiny_whisper_model.name  # the model folder's name
    assert row[2] == "en"
    assert row[3] == pytest.approx(11.0, abs=0.01)
    assert float(row[4]) == 0.0
    assert row[5] == len(result.cues)
    assert float(row[6]) == result.cues[0].start


def test_model_is_loaded_on_first_use_and_kept(transcriber: LocalWhisperTranscriber) -> None:
    assert transcriber._worker is None  # constructing touches nothing
    transcriber.transcribe(speech("deepspeech/LDC93S1.wav"))
    first = transcriber._worker
    transcriber.transcribe(speech("deepspeech/new-home-in-the-stars-16k.wav"))
    assert first is not None and transcriber._worker is first and first.alive
    assert transcriber.last_run == {
        "device": "cpu",
        "model": transcriber.settings.model,
        "compute_type": "int8",  # the CPU default
        "batch_size": 8,
    }


def test_undecodable_audio_is_an_error_and_the_worker_survives(
    transcriber: LocalWhisperTranscriber, tmp_path: Path
) -> None:
    bogus = tmp_path / "broken.webm"
    bogus.write_bytes(b"not audio at all")
    with pytest.raises(TranscriptFailure) as caught:
        transcriber.transcribe(bogus, video_id="broken")
    assert caught.value.failure_class is FailureClass.ERROR
    assert "broken" in caught.value.message
    assert transcriber.transcribe(speech("deepspeech/LDC93S1.wav")).cues


def test_missing_model_files_are_engine_unavailable(tmp_path: Path) -> None:
    engine = LocalWhisperTranscriber(LocalWhisperSettings(model=str(tmp_path / "no-such-model")))
    with pytest.raises(TranscriptFailure) as caught:
        engine.transcribe(speech("whisper/jfk.flac"), video_id="jfk")
    assert caught.value.failure_class is FailureClass.ENGINE_UNAVAILABLE
    assert "jfk" in caught.value.message and "model.bin" in caught.value.message
    assert engine._worker is None


def test_unknown_model_without_network_is_engine_unavailable(monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with (
        LocalWhisperTranscriber(
            LocalWhisperSettings(model="tiny.en", local_files_only=True, download_root="/nonexistent")
        ) as engine,
        pytest.raises(TranscriptFailure) as caught,
    ):
        engine.transcribe(speech("deepspeech/LDC93S1.wav"), video_id="v")
    assert caught.value.failure_class is FailureClass.ENGINE_UNAVAILABLE
    assert "tiny.en" in caught.value.message


@pytest.mark.skipif(ctranslate2.get_cuda_device_count() > 0, reason="this machine has a CUDA GPU")
def test_cuda_asked_for_without_a_gpu_is_engine_unavailable(tiny_whisper_model: Path) -> None:
    with (
        LocalWhisperTranscriber(LocalWhisperSettings(model=str(tiny_whisper_model), device="cuda")) as engine,
        pytest.raises(TranscriptFailure) as caught,
    ):
        engine.transcribe(speech("deepspeech/LDC93S1.wav"), video_id="v")
    assert caught.value.failure_class is FailureClass.ENGINE_UNAVAILABLE
    assert "cuda" in caught.value.message.lower()


def test_worker_crash_at_exit_after_answering_is_not_a_failure(transcriber: LocalWhisperTranscriber) -> None:
    result = transcriber.transcribe(speech("deepspeech/LDC93S1.wav"))
    worker = transcriber._worker
    assert worker is not None
    # What `free(): invalid pointer` at interpreter exit looks like from the parent: SIGABRT.
    os.kill(worker._process.pid, signal.SIGABRT)
    worker._process.wait()
    transcriber.close()  # does not raise
    assert result.cues


def test_a_dead_worker_is_replaced_before_the_next_file(
    transcriber: LocalWhisperTranscriber,
) -> None:
    transcriber.transcribe(speech("deepspeech/LDC93S1.wav"))
    transcriber._worker._process.kill()  # type: ignore[union-attr]
    transcriber._worker._process.wait()  # type: ignore[union-attr]
    # The dead worker is noticed and replaced before the next file.
    assert transcriber.transcribe(speech("deepspeech/LDC93S1.wav")).cues


def test_a_process_that_imported_torch_exits_cleanly_after_local_transcription(
    tiny_whisper_model: Path,
) -> None:
    script = textwrap.dedent(
        f"""
        import json, sys
        import torch  # as sentence-transformers does in a run that also embeds
        torch.ones(4).sum()
        from pathlib import Path
        from chaffee_assets.transcription.local_whisper import LocalWhisperSettings, LocalWhisperTranscriber
        engine = LocalWhisperTranscriber(LocalWhisperSettings(model={str(tiny_whisper_model)!r}))
        result = engine.transcribe(Path({str(speech("whisper/jfk.flac"))!r}))
        assert "faster_whisper" not in sys.modules and "ctranslate2" not in sys.modules
        print(json.dumps([c.as_dict() for c in result.cues]))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().startswith("[{")
