"""What every speech-recognition engine returns and promises: the `Transcription` and `Transcriber` types."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from chaffee_assets.ingest.cues import Cue
from chaffee_assets.transcription.registry import LOCAL_WHISPER, OPENAI, engines

ENGINES = tuple(engine.name for engine in engines())
__all__ = ["ENGINES", "LOCAL_WHISPER", "OPENAI", "Transcriber", "Transcription", "describe", "tidy_cues"]
# Control characters (NUL above all, which PostgreSQL text and jsonb reject) never belong in speech.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class Transcription:
    """One audio file's words with their provenance (the columns a transcript row keeps)."""

    cues: list[Cue]
    engine: str  # a speech-recognition engine of the registry
    model: str
    language: str | None
    audio_seconds: float
    cost_usd: float


class Transcriber(Protocol):
    """Turns an audio file into timed text, or raises `TranscriptFailure` saying why it could not."""

    engine: str

    def transcribe(self, audio: Path, *, video_id: str | None = None) -> Transcription: ...


def tidy_cues(cues: Iterable[Cue], duration: float) -> list[Cue]:
    """Cues in time order, inside [0, duration], without empty text.

    A model can emit timestamps past the end of the audio (Whisper pads to 30 s windows): a cue that
    starts past the end is dropped, one that ends past it is clamped, so every deep link lands inside
    the video.
    """
    kept: list[Cue] = []
    for cue in sorted(cues, key=lambda c: (c.start, c.end)):
        text = _CONTROL.sub("", cue.text).strip()
        start = max(0.0, cue.start)
        if not text or start >= duration:
            continue
        end = min(max(cue.end, start), duration)
        kept.append(Cue(round(start, 3), round(end, 3), text))
    return kept


def describe(audio: Path, video_id: str | None) -> str:
    """How error messages name what was being transcribed."""
    return f"video {video_id} ({audio.name})" if video_id else str(audio)
