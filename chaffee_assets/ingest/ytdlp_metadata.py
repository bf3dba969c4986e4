"""Reading what yt-dlp writes: a video's `.info.json` into a `Video`, a flat channel listing into entries.

Both the library source (files on disk) and the YouTube source (yt-dlp called in-process) go through
these functions, so a video's metadata means the same thing whichever way it arrived.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from chaffee_assets.ingest.validation import (
    datetime_from_epoch,
    datetime_from_yyyymmdd,
    finite_number,
    media_seconds,
    shown,
    text_or_none,
)
from chaffee_assets.ingest.videos import Video, watch_url

# yt-dlp `availability` → ours. `needs_auth` is an age gate or a sign-in wall: the video cannot be
# fetched anonymously, which is what `private` means to the pipeline (a cookies file may lift it).
_AVAILABILITY = {
    "public": "available",
    "unlisted": "available",
    "private": "private",
    "needs_auth": "private",
    "subscriber_only": "members_only",
    "premium_only": "members_only",
}

# yt-dlp `live_status` → ours. These win over `availability`: a public stream that is on air has
# no recording to transcribe yet. `post_live` is a stream that just ended and is still being
# processed into a recording, so it is treated as still live.
_LIVE_STATUS = {
    "is_live": "live",
    "is_upcoming": "upcoming",
    "post_live": "live",
}

# Placeholder titles YouTube gives entries of a listing that can no longer be watched.
_PLACEHOLDER_TITLES = {"[Private video]": "private", "[Deleted video]": "deleted"}

_NOT_A_VIDEO_TYPES = {"playlist", "multi_video", "channel"}


class MetadataError(ValueError):
    """A yt-dlp metadata file or dict that cannot be read as a video; the message names the file."""


def availability_of(info: Mapping[str, Any]) -> str:
    """Our availability for a yt-dlp info dict or flat-listing entry (see AVAILABILITIES)."""
    live = _LIVE_STATUS.get(str(info.get("live_status") or ""))
    if live:
        return live
    if info.get("is_live") is True:
        return "live"
    mapped = _AVAILABILITY.get(str(info.get("availability") or ""))
    if mapped:
        return mapped
    return _PLACEHOLDER_TITLES.get(str(info.get("title") or ""), "available")


_DATE_FIELDS = (
    ("timestamp", datetime_from_epoch),
    ("release_timestamp", datetime_from_epoch),
    ("upload_date", datetime_from_yyyymmdd),
    ("release_date", datetime_from_yyyymmdd),
)


def published_at_of(info: Mapping[str, Any], problems: list[str] | None = None) -> datetime | None:
    """When the video was published, in UTC, or None when the dict carries no possible date.

    `timestamp` is the exact upload instant; `release_timestamp` is a premiere's or stream's start
    (also the only instant an upcoming video has); the day-only `upload_date`/`release_date` come
    last and are read as midnight UTC. A field holding something that cannot be a publish date
    (1e20, NaN, the year 3000, "yesterday") is passed over for the next, and noted in `problems`.
    """
    for key, parse in _DATE_FIELDS:
        value = info.get(key)
        if value is None:
            continue
        found = parse(value)
        if found is not None:
            return found
        if problems is not None:
            problems.append(f"{key} {shown(value)} is not a possible publish date")
    return None


def _web_url(value: Any) -> str | None:
    url = text_or_none(value)
    return url if url and url.startswith(("http://", "https://")) and " " not in url else None


def _best_thumbnail(info: Mapping[str, Any]) -> str | None:
    if _web_url(info.get("thumbnail")):
        return _web_url(info["thumbnail"])
    thumbnails = info.get("thumbnails")
    if isinstance(thumbnails, list):
        # yt-dlp orders thumbnails worst to best.
        for thumb in reversed(thumbnails):
            if isinstance(thumb, Mapping) and _web_url(thumb.get("url")):
                return _web_url(thumb["url"])
    return None


def _watch_page(info: Mapping[str, Any], video_id: str) -> str:
    for key in ("webpage_url", "original_url", "url"):
        url = _web_url(info.get(key))
        if url:
            return url
    return watch_url(video_id)


def _duration(info: Mapping[str, Any], problems: list[str]) -> float | None:
    value = info.get("duration")
    seconds = media_seconds(value)
    if seconds is None and value is not None and finite_number(value) != 0:
        problems.append(f"duration {shown(value)} is not a possible length in seconds")
    return seconds


def _str_or_none(value: Any) -> str | None:
    return text_or_none(value)


def _tags(value: Any) -> list[str]:
    if not isinstance(value, list):
        return []
    cleaned = (text_or_none(tag) for tag in value)
    return list(dict.fromkeys(tag for tag in cleaned if tag))


def video_from_info(
    info: Any, *, source: str, origin: str = "<info dict>", default_id: str | None = None
) -> Video:
    """A `Video` from a full yt-dlp info dict (what `--dump-json`/`--write-info-json` write).

    `origin` names where the dict came from and appears in every error. A dict without any date
    gives `published_at=None`: the caller decides (the library reports such a video as skipped).
    Raises `MetadataError` for a playlist/channel dict, a flat-listing entry, or a dict with no id.
    """
    if not isinstance(info, Mapping):
        raise MetadataError(f"{origin}: expected a JSON object, found {type(info).__name__}")
    kind = info.get("_type")
    if kind in _NOT_A_VIDEO_TYPES:
        raise MetadataError(
            f"{origin}: this is a yt-dlp {kind} info dict ({info.get('title')!r}, id {info.get('id')!r}),"
            " not a single video's; write one .info.json per video (yt-dlp --write-info-json)"
        )
    if kind == "url":
        raise MetadataError(
            f"{origin}: this is a flat-listing entry (_type 'url') for {info.get('id')!r}, which has no"
            " publish date; read it with parse_flat_listing, or fetch the video's full info"
        )
    video_id = _str_or_none(info.get("id")) or default_id
    if not video_id:
        raise MetadataError(f"{origin}: no 'id' field; a video's info.json needs at least id and title")
    title = _str_or_none(info.get("title")) or _str_or_none(info.get("fulltitle"))
    if title is None:
        raise MetadataError(f"{origin}: video {video_id} has no 'title'; add one to its info.json")
    problems: list[str] = []
    published_at = published_at_of(info, problems)
    duration_s = _duration(info, problems)
    return Video(
        video_id=video_id,
        source=source,
        title=title,
        published_at=published_at,
        description=text_or_none(info.get("description"), multiline=True),
        duration_s=duration_s,
        channel=_str_or_none(info.get("channel")) or _str_or_none(info.get("uploader")),
        channel_id=_str_or_none(info.get("channel_id")),
        tags=_tags(info.get("tags")),
        thumbnail_url=_best_thumbnail(info),
        url=_watch_page(info, video_id),
        availability=availability_of(info),
        language=_str_or_none(info.get("language")),
        metadata_problems=[f"{origin}: {problem}; ignored" for problem in problems],
    )


def load_info_json(path: Path) -> dict[str, Any]:
    """The parsed JSON object of an info file, or `MetadataError` naming the file."""
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise MetadataError(f"{path}: cannot be read ({exc})") from exc
    try:
        info = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise MetadataError(
            f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}); re-download it with"
            " yt-dlp --write-info-json --skip-download"
        ) from exc
    except RecursionError as exc:
        raise MetadataError(f"{path}: JSON nested too deeply to be video metadata") from exc
    if not isinstance(info, dict):
        raise MetadataError(f"{path}: expected a JSON object, found {type(info).__name__}")
    return info


def read_info_json(path: Path, *, source: str = "library") -> Video:
    """A `Video` from a yt-dlp `.info.json` file; `MetadataError` names the file when it is not one."""
    info = load_info_json(path)
    stem = path.name.split(".", 1)[0]
    return video_from_info(info, source=source, origin=str(path), default_id=stem or None)


@dataclass(frozen=True, slots=True)
class CaptionLanguages:
    """Which caption languages YouTube offered, as recorded in an info dict."""

    manual: frozenset[str]
    automatic: frozenset[str]

    @property
    def recorded(self) -> bool:
        """Whether the info dict said anything at all (older or hand-written files do not)."""
        return bool(self.manual or self.automatic)


def caption_languages(info: Mapping[str, Any]) -> CaptionLanguages:
    def keys(field: str) -> frozenset[str]:
        value = info.get(field)
        return frozenset(k for k in value if k != "live_chat") if isinstance(value, Mapping) else frozenset()

    return CaptionLanguages(manual=keys("subtitles"), automatic=keys("automatic_captions"))


@dataclass(frozen=True, slots=True)
class ListingEntry:
    """One video of a channel listing. A flat listing carries no publish date (`published_at` None)."""

    video_id: str
    title: str | None
    published_at: datetime | None = None
    duration_s: float | None = None
    description: str | None = None
    thumbnail_url: str | None = None
    availability: str = "available"
    channel_id: str | None = None

    @property
    def published_on(self) -> date | None:
        return self.published_at.date() if self.published_at else None


def listing_entry_from_dict(entry: Any, *, origin: str = "<listing>") -> ListingEntry:
    if not isinstance(entry, Mapping):
        raise MetadataError(f"{origin}: a listing entry must be a JSON object, found {type(entry).__name__}")
    video_id = _str_or_none(entry.get("id"))
    if not video_id:
        raise MetadataError(f"{origin}: a listing entry has no 'id'")
    return ListingEntry(
        video_id=video_id,
        title=_str_or_none(entry.get("title")),
        published_at=published_at_of(entry),
        duration_s=media_seconds(entry.get("duration")),
        description=text_or_none(entry.get("description"), multiline=True),
        thumbnail_url=_best_thumbnail(entry),
        availability=availability_of(entry),
        channel_id=_str_or_none(entry.get("channel_id")) or _str_or_none(entry.get("playlist_channel_id")),
    )


def _flatten(obj: Any) -> list[Any]:
    """Entries of a listing: a list, a playlist dict with `entries` (tabs nest playlists), or one entry.

    Walked with a stack rather than recursion, so no nesting depth can exhaust Python's stack.
    """
    found: list[Any] = []
    pending: list[Any] = [obj]
    while pending:
        item = pending.pop()
        if isinstance(item, list):
            pending.extend(reversed(item))
        elif isinstance(item, Mapping) and item.get("_type") in _NOT_A_VIDEO_TYPES:
            entries = item.get("entries")
            # yt-dlp hands out a generator (or a LazyList) for entries unless they were already listed.
            if entries is not None and not isinstance(entries, str | Mapping):
                pending.extend(reversed(list(entries)))
        else:
            found.append(item)
    return found


def listing_entries_from_info(info: Any, *, origin: str = "<listing>") -> list[ListingEntry]:
    """Entries of a playlist or channel-tab info dict, as flat `YoutubeDL.extract_info` returns it."""
    entries: dict[str, ListingEntry] = {}
    for obj in _flatten(info):
        entry = listing_entry_from_dict(obj, origin=origin)
        entries.setdefault(entry.video_id, entry)
    return list(entries.values())


def parse_flat_listing(text: str, *, origin: str = "<listing>") -> list[ListingEntry]:
    """Entries of a `yt-dlp --flat-playlist` dump: JSON lines (`-j`), a JSON array, or one `-J` dict.

    Duplicates (a video on both the /videos and /streams tabs) are kept once, first seen first.
    """
    text = text.lstrip("\ufeff")
    objects: list[Any]
    try:
        objects = [json.loads(text)] if text.strip() else []
    except RecursionError as exc:
        raise MetadataError(f"{origin}: JSON nested too deeply to be a channel listing") from exc
    except json.JSONDecodeError:
        objects = []
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                objects.append(json.loads(line))
            except RecursionError as exc:
                raise MetadataError(f"{origin}: line {lineno} is JSON nested too deeply") from exc
            except json.JSONDecodeError as exc:
                raise MetadataError(
                    f"{origin}: line {lineno} is not JSON ({exc.msg}); expected yt-dlp"
                    " --flat-playlist --dump-json output, one object per line"
                ) from exc
    return listing_entries_from_info(objects, origin=origin)


def read_flat_listing(path: Path) -> list[ListingEntry]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise MetadataError(f"{path}: cannot be read as UTF-8 text ({exc})") from exc
    return parse_flat_listing(text, origin=str(path))
