"""Audio handling on real speech: decoding, compact re-encoding, splitting at pauses, temp-file hygiene."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from chaffee_assets.transcription import audio
from chaffee_assets_tests.speech_samples import joined_speech, speech


def test_decodes_real_files_to_16k_mono_with_their_duration() -> None:
    assert audio.duration_seconds(speech("whisper/jfk.flac")) == pytest.approx(11.0, abs=0.01)
    assert audio.duration_seconds(speech("deepspeech/LDC93S1.wav")) == pytest.approx(2.92, abs=0.02)
    assert audio.duration_seconds(speech("faster-whisper/hotwords.mp3")) > 1.0


def test_undecodable_file_names_the_file(tmp_path: Path) -> None:
    bogus = tmp_path / "not-audio.mp3"
    bogus.write_text("this is not an mp3")
    with pytest.raises(audio.UndecodableAudio, match="not-audio.mp3"):
        audio.decode(bogus)


def test_compact_mp3_keeps_duration_at_the_chosen_bitrate(tmp_path: Path) -> None:
    samples = audio.decode(speech("whisper/jfk.flac"))
    mp3 = audio.encode_mp3(samples, tmp_path / "jfk.mp3", bitrate=32_000)
    assert audio.duration_seconds(mp3) == pytest.approx(11.0, abs=0.1)
    assert mp3.stat().st_size == pytest.approx(11.0 * 32_000 / 8, rel=0.1)


def test_long_audio_is_split_under_the_limit_at_pauses(tmp_path: Path) -> None:
    long_file, pauses = joined_speech(tmp_path / "joined.wav")
    total = audio.duration_seconds(long_file)
    chunks = audio.split_for_upload(long_file, tmp_path, max_bytes=40_000)

    assert len(chunks) >= 3
    assert all(chunk.path.stat().st_size < 40_000 for chunk in chunks)
    # Pieces tile the original exactly: each starts where the previous ended.
    assert chunks[0].offset == 0
    for before, after in zip(chunks, chunks[1:], strict=False):
        assert after.offset == pytest.approx(before.offset + before.duration, abs=1e-6)
    assert sum(c.duration for c in chunks) == pytest.approx(total, abs=1e-3)
    # Every cut falls in a quiet moment (a pause between sentences, or JFK's between phrases), so no
    # word is cut in two: the frame around the cut is far quieter than typical speech.
    samples = audio.decode(long_file)
    energy = audio.frame_energy(samples)
    speech_level = float(np.median(energy[energy > energy.max() * 0.05]))
    for chunk in chunks[1:]:
        at = int(chunk.offset * audio.SAMPLE_RATE)
        around = audio.frame_energy(samples[at - 800 : at + 800], frame_s=0.1)
        assert float(around.max()) < 0.25 * speech_level, chunk.offset
    assert any(start <= chunk.offset <= end for chunk in chunks for start, end in pauses)


def test_short_audio_is_one_piece(tmp_path: Path) -> None:
    chunks = audio.split_for_upload(speech("whisper/jfk.flac"), tmp_path, max_bytes=24 * 1024 * 1024)
    assert len(chunks) == 1
    assert chunks[0].duration == pytest.approx(11.0, abs=0.01)


def test_scratch_dir_is_removed_even_when_the_work_fails() -> None:
    with pytest.raises(RuntimeError), audio.scratch_dir() as folder:
        (folder / "part000.mp3").write_bytes(b"x")
        raise RuntimeError("boom")
    assert not folder.exists()
