"""Real speech from ../shared/realdata/audio, and longer files made by joining it with pauses."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from chaffee_assets.transcription.audio import SAMPLE_RATE, decode
from chaffee_assets_tests.conftest import shared_path

SHORT_SPEECH = [f"speechbrain_timit/spk{s}_snt{n}.wav" for s in (1, 2) for n in range(1, 6)] + [
    "deepspeech/LDC93S1.wav",
    "deepspeech/new-home-in-the-stars-16k.wav",
    "whisper/jfk.flac",
]


def speech(name: str) -> Path:
    return shared_path("realdata", "audio", name)


def write_wav(samples: np.ndarray, dest: Path) -> Path:
    with wave.open(str(dest), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(np.asarray(samples, dtype=np.int16).tobytes())
    return dest


def joined_speech(
    dest: Path, *, pause_s: float = 0.8, rounds: int = 1
) -> tuple[Path, list[tuple[float, float]]]:
    """The real samples one after another with silent pauses; returns the file and the pauses (s)."""
    silence = np.zeros(int(pause_s * SAMPLE_RATE), dtype=np.int16)
    parts: list[np.ndarray] = []
    pauses: list[tuple[float, float]] = []
    position = 0
    for _ in range(rounds):
        for name in SHORT_SPEECH:
            samples = decode(speech(name))
            parts += [samples, silence]
            position += len(samples)
            pauses.append((position / SAMPLE_RATE, (position + len(silence)) / SAMPLE_RATE))
            position += len(silence)
    return write_wav(np.concatenate(parts), dest), pauses
