"""A video's metadata as the pipeline stores it, whatever source it came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

AVAILABILITIES = ("available", "private", "deleted", "members_only", "live", "upcoming")


def watch_url(video_id: str, start_s: float | None = None) -> str:
    """The YouTube link for a video, optionally at a second (the deep link search returns)."""
    url = f"https://www.youtube.com/watch?v={video_id}"
    if start_s is not None:
        url += f"&t={int(start_s)}s"
    return url


@dataclass(slots=True)
class Video:
    """One video (or imported recording). `published_at` is UTC and decides its partition."""

    video_id: str
    source: str  # 'youtube' | 'library'
    title: str
    published_at: datetime | None
    description: str | None = None
    duration_s: float | None = None
    channel: str | None = None
    channel_id: str | None = None
    tags: list[str] = field(default_factory=list)
    thumbnail_url: str | None = None
    url: str | None = None
    availability: str = "available"
    language: str | None = None
    # Local files beside the video in a library folder (None for remote sources).
    caption_files: list[Path] = field(default_factory=list)
    audio_file: Path | None = None
    # Fields the source gave that could not be true and were dropped, each naming the file and field.
    metadata_problems: list[str] = field(default_factory=list)

    @property
    def partition_date(self) -> date | None:
        return self.published_at.date() if self.published_at else None

    @property
    def link(self) -> str:
        return self.url or watch_url(self.video_id)
