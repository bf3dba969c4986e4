"""A local folder of videos laid out as yt-dlp writes it, read as a `VideoSource` named "library".

Layout, per video id (ids may start with `-` and contain `_`, never `.`):
  `<id>.info.json`                         metadata (required: see below)
  `<id>.<lang>.vtt|srt|json3|srv3|json`    captions (`live_chat` is ignored)
  `<id>.json`                              a youtube-transcript-api dump, language unknown
  `<id>.m4a|webm|opus|mp3|wav|flac|ogg`    audio

Every video needs its `<id>.info.json` with at least a title and a date (`timestamp` or
`upload_date`): the date decides its partition. A video without one (an imported Zoom recording
with only audio, or an info.json without a date) is not listed; it is reported in `skipped()` with
the reason and what to add. The folder is walked and every info.json parsed once per source
instance, so a backfill of hundreds of days costs one scan.
"""

from __future__ import annotations

import os
import shutil
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import date
from functools import cached_property
from pathlib import Path

from chaffee_assets.ingest.outcomes import FailureClass, TranscriptFailure
from chaffee_assets.ingest.sources import CaptionTrack
from chaffee_assets.ingest.validation import clean_text, shown
from chaffee_assets.ingest.videos import Video
from chaffee_assets.ingest.ytdlp_metadata import (
    CaptionLanguages,
    MetadataError,
    caption_languages,
    load_info_json,
    video_from_info,
)

CAPTION_EXTENSIONS = ("vtt", "srt", "json3", "srv3", "json")
AUDIO_EXTENSIONS = ("m4a", "opus", "webm", "mp3", "flac", "wav", "ogg")
IGNORED_LANGUAGES = frozenset({"live_chat"})
# Among equally good tracks: formats with real cue timing first.
_FORMAT_RANK = {ext: i for i, ext in enumerate(("vtt", "srt", "json3", "srv3", "json"))}


@dataclass(frozen=True, slots=True)
class CaptionFile:
    path: Path
    language: str | None  # None for `<id>.json`
    ext: str


@dataclass(slots=True)
class _Entry:
    info: Path | None = None
    captions: list[CaptionFile] = field(default_factory=list)
    audio: list[Path] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class SkippedVideo:
    """A library entry that is not listed, and why."""

    video_id: str
    path: Path
    reason: str


def _classify(name: str) -> tuple[str, str, str | None, str] | None:
    """(video id, kind, language, extension) for a library file name, None for files we do not read."""
    video_id, dot, rest = name.partition(".")
    if not dot or not video_id or name.endswith(".part"):
        return None
    if rest == "info.json":
        return video_id, "info", None, "json"
    parts = rest.split(".")
    if len(parts) == 1:
        ext = parts[0].lower()
        if ext in AUDIO_EXTENSIONS:
            return video_id, "audio", None, ext
        if ext == "json":
            return video_id, "caption", None, ext
        return None
    if len(parts) == 2 and parts[1].lower() in CAPTION_EXTENSIONS and parts[0]:
        language = parts[0]
        if language in IGNORED_LANGUAGES:
            return None
        return video_id, "caption", language, parts[1].lower()
    return None


def is_english(language: str | None) -> bool:
    return language is not None and (language.lower() == "en" or language.lower().startswith("en-"))


def _caption_order(file: CaptionFile, languages: CaptionLanguages) -> tuple[int, int, int, int]:
    """Sort key: English first, then manual over auto, then plain `en` over variants, then format."""
    lang = file.language
    if languages.recorded and lang is not None:
        automatic = lang not in languages.manual and (lang in languages.automatic or lang.endswith("-orig"))
    else:
        automatic = False  # nothing says otherwise: a file someone put there on purpose
    english = is_english(lang) or (lang is None)
    variant = 0 if lang in (None, "en") else 1
    return (0 if english else 1, 1 if automatic else 0, variant, _FORMAT_RANK.get(file.ext, 9))


def _folder_signature(root: Path) -> tuple[tuple[str, int, int], ...] | None:
    """Every file under `root` as (path, size, modification time); None when there is no folder."""
    if not root.is_dir():
        return None
    files = []
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            try:
                stat = os.stat(os.path.join(dirpath, name))
            except OSError:  # removed while walking: the next call sees the folder settled
                continue
            files.append((os.path.join(dirpath, name), stat.st_size, stat.st_mtime_ns))
    return tuple(sorted(files))


_SHARED: dict[Path, tuple[tuple[tuple[str, int, int], ...] | None, LibrarySource]] = {}


class LibrarySource:
    """Videos, captions and audio from a local folder (see the module docstring for the layout)."""

    name = "library"

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    @classmethod
    def shared(cls, root: Path | str) -> LibrarySource:
        """The source for `root` this process already indexed, while the folder's files are the
        same (names, sizes, modification times); else a new one. An ingest's runs each build their
        resources anew, and would otherwise parse every info.json once per run."""
        root = Path(root)
        key = root.resolve() if root.is_dir() else root
        signature = _folder_signature(root)
        cached = _SHARED.get(key)
        if cached is None or cached[0] != signature:
            cached = (signature, cls(root))
            _SHARED[key] = cached
        return cached[1]

    # -- the index: built on first use, once per instance ------------------------------------

    @cached_property
    def _entries(self) -> dict[str, _Entry]:
        if not self.root.is_dir():
            raise FileNotFoundError(
                f"library folder {self.root} does not exist; create it or point the library setting elsewhere"
            )
        entries: dict[str, _Entry] = defaultdict(_Entry)
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                classified = _classify(name)
                if classified is None:
                    continue
                video_id, kind, language, ext = classified
                path = Path(dirpath) / name
                entry = entries[video_id]
                if kind == "info":
                    entry.info = entry.info or path
                elif kind == "caption":
                    entry.captions.append(CaptionFile(path, language, ext))
                else:
                    entry.audio.append(path)
        return dict(entries)

    @cached_property
    def _catalog(self) -> tuple[dict[str, Video], dict[str, CaptionLanguages], list[SkippedVideo]]:
        videos: dict[str, Video] = {}
        languages: dict[str, CaptionLanguages] = {}
        skipped: list[SkippedVideo] = []
        for video_id, entry in sorted(self._entries.items()):
            if clean_text(video_id) != video_id:
                found = entry.info or (entry.audio[0] if entry.audio else entry.captions[0].path)
                skipped.append(
                    SkippedVideo(
                        video_id,
                        found,
                        f"{found.parent / shown(found.name)}: a video id cannot hold control characters or"
                        " surrounding spaces; rename the files",
                    )
                )
                continue
            if entry.info is None:
                found = entry.audio[0] if entry.audio else entry.captions[0].path
                skipped.append(
                    SkippedVideo(
                        video_id,
                        found,
                        f"no {video_id}.info.json beside {found.name}: an imported recording needs one with"
                        ' at least {"id", "title", "upload_date": "YYYYMMDD"} to be placed on a day',
                    )
                )
                continue
            try:
                info = load_info_json(entry.info)
                video = video_from_info(info, source=self.name, origin=str(entry.info), default_id=video_id)
            except MetadataError as exc:
                skipped.append(SkippedVideo(video_id, entry.info, str(exc)))
                continue
            except Exception as exc:  # one unreadable entry must not hide the rest of the library
                skipped.append(
                    SkippedVideo(
                        video_id, entry.info, f"{entry.info}: cannot be read ({type(exc).__name__}: {exc})"
                    )
                )
                continue
            if video.video_id != video_id:
                skipped.append(
                    SkippedVideo(
                        video_id,
                        entry.info,
                        f"{entry.info} says its id is {video.video_id!r} but is named for {video_id!r};"
                        " rename the files or fix the id",
                    )
                )
                continue
            if video.published_at is None:
                skipped.append(
                    SkippedVideo(
                        video_id,
                        entry.info,
                        f"{entry.info} has no date (timestamp, release_timestamp, upload_date or"
                        f" release_date), so video {video_id} belongs to no day; add upload_date: YYYYMMDD"
                        + "".join(f"; {p.split(': ', 1)[-1]}" for p in video.metadata_problems),
                    )
                )
                continue
            video.caption_files = [c.path for c in self._ranked_captions(entry, caption_languages(info))]
            video.audio_file = self._preferred_audio(entry)
            videos[video_id] = video
            languages[video_id] = caption_languages(info)
        return videos, languages, skipped

    @cached_property
    def _by_day(self) -> dict[date, list[Video]]:
        by_day: dict[date, list[Video]] = defaultdict(list)
        for video in self._catalog[0].values():
            assert video.partition_date is not None  # undated videos were skipped
            by_day[video.partition_date].append(video)
        for day_videos in by_day.values():
            day_videos.sort(key=lambda v: (v.published_at, v.video_id))
        return dict(by_day)

    @staticmethod
    def _ranked_captions(entry: _Entry, languages: CaptionLanguages) -> list[CaptionFile]:
        return sorted(entry.captions, key=lambda c: (*_caption_order(c, languages), c.path.name))

    @staticmethod
    def _preferred_audio(entry: _Entry) -> Path | None:
        if not entry.audio:
            return None
        return min(entry.audio, key=lambda p: (AUDIO_EXTENSIONS.index(p.suffix[1:].lower()), p.name))

    # -- VideoSource ---------------------------------------------------------------------------

    def videos_published_on(self, day: date) -> list[Video]:
        # Copies, so a caller changing a Video cannot change what the next day's call returns.
        return [
            replace(v, tags=list(v.tags), caption_files=list(v.caption_files))
            for v in self._by_day.get(day, [])
        ]

    def publish_dates(self) -> set[date]:
        return set(self._by_day)

    def skipped(self) -> list[SkippedVideo]:
        """Library entries that are not listed (no info.json, broken info.json, no date), with reasons."""
        return list(self._catalog[2])

    def video(self, video_id: str) -> Video | None:
        return self._catalog[0].get(video_id)

    def fetch_captions(self, video: Video) -> CaptionTrack:
        """The best caption file of the video: English first, manual over auto.

        A broken file is passed over for the next best one; if none can be read the failure is
        ERROR naming the files (fix or delete them). No file, or only empty ones, is NO_CAPTIONS.
        """
        from chaffee_assets.ingest.captions import CaptionError, parse_caption_file

        entry = self._entries.get(video.video_id)
        if entry is not None:
            languages = self._catalog[1].get(video.video_id, CaptionLanguages(frozenset(), frozenset()))
            candidates = self._ranked_captions(entry, languages)
        else:
            candidates = [CaptionFile(p, *_language_and_ext(p)) for p in video.caption_files]
        if not candidates:
            raise TranscriptFailure(
                FailureClass.NO_CAPTIONS,
                f"video {video.video_id} has no caption file in {self.root}"
                f" (looked for {video.video_id}.<lang>.vtt|srt|json3|srv3 and {video.video_id}.json)",
            )
        problems: list[str] = []
        for candidate in candidates:
            try:
                cues = parse_caption_file(candidate.path)
            except (CaptionError, OSError) as exc:
                problems.append(str(exc) if str(candidate.path) in str(exc) else f"{candidate.path}: {exc}")
                continue
            if cues:
                language = candidate.language or video.language
                return CaptionTrack(
                    cues=cues, source="library_file", language=language, origin=str(candidate.path)
                )
        if not problems:
            # Files that parse but hold no words (a bare WEBVTT header): the video has no captions.
            raise TranscriptFailure(
                FailureClass.NO_CAPTIONS,
                f"video {video.video_id}: its caption files hold no text"
                f" ({', '.join(str(c.path) for c in candidates)})",
            )
        raise TranscriptFailure(
            FailureClass.ERROR,
            f"video {video.video_id}: no caption file could be read ({'; '.join(problems)});"
            " fix or delete the broken file, then re-run the partition",
        )

    def fetch_audio(self, video: Video, dest_dir: Path, *, smallest: bool = False) -> Path:
        """A link to (or copy of) the library's audio file under `dest_dir` (the one file it has,
        whatever `smallest` asks).

        The caller deletes what it gets, so the library's own file is never handed out. No audio
        file is UNAVAILABLE: the library cannot produce one until the operator adds it.
        """
        entry = self._entries.get(video.video_id)
        audio = self._preferred_audio(entry) if entry is not None else video.audio_file
        if audio is None or not audio.exists():
            raise TranscriptFailure(
                FailureClass.UNAVAILABLE,
                f"video {video.video_id} has no audio file in {self.root}; add"
                f" {video.video_id}.m4a (or {'/'.join(AUDIO_EXTENSIONS)}) to transcribe it",
            )
        dest_dir.mkdir(parents=True, exist_ok=True)
        target = dest_dir / audio.name
        if target.exists():
            target.unlink()
        try:
            os.link(audio, target)
        except OSError:
            shutil.copy2(audio, target)  # another file system, or links not allowed
        return target


def _language_and_ext(path: Path) -> tuple[str | None, str]:
    classified = _classify(path.name)
    if classified is None:
        return None, path.suffix.lstrip(".").lower()
    return classified[2], classified[3]
