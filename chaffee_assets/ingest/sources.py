"""The one interface every video source implements: the YouTube channel and a local library folder."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Protocol, runtime_checkable

from chaffee_assets.ingest.cues import Cue
from chaffee_assets.ingest.videos import Video
from chaffee_assets.transcription import registry

CAPTION_SOURCES = registry.caption_sources()


@dataclass(frozen=True, slots=True)
class CaptionTrack:
    """Captions obtained for a video, with where they came from."""

    cues: list[Cue]
    source: str  # one of CAPTION_SOURCES
    language: str | None
    origin: str  # what produced it, for provenance: a file path, 'youtube-transcript-api', 'yt-dlp'


@runtime_checkable
class VideoSource(Protocol):
    """Where videos and their captions and audio come from.

    Runtime-checkable, so `isinstance(obj, VideoSource)` tells whether an object offers every member.

    Methods raise `chaffee_assets.ingest.outcomes.TranscriptFailure` with the right class for a
    per-video problem (blocked, no captions, unavailable…); anything else is a bug or an outage.
    """

    name: str  # 'youtube' | 'library': stored as videos.source

    def videos_published_on(self, day: date) -> list[Video]:
        """Every video whose publish date (UTC) is `day`, with its metadata."""
        ...

    def publish_dates(self) -> set[date]:
        """The days that have at least one video (what a backfill needs to materialise)."""
        ...

    def fetch_captions(self, video: Video) -> CaptionTrack:
        """The best captions for the video: manual over auto, English first."""
        ...

    def fetch_audio(self, video: Video, dest_dir: Path, *, smallest: bool = False) -> Path:
        """The video's audio as a local file under `dest_dir` (the caller deletes it); `smallest`:
        the least data that still carries speech (telling voices apart needs no more)."""
        ...
