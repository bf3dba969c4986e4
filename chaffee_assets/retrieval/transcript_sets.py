"""Transcripts as evaluation sets ship them: many videos in one JSON file, or chapter-merged text.

These shapes are not caption formats a channel produces (those are read by
`chaffee_assets.ingest.captions`); they are how public evaluation sets and research repositories
store transcripts, and they are read here, beside the evaluation code, into the same normalised cues:

- youtube-transcript-api output saved per video id: ``{video_id: [{text, start, duration}]}``;
- lists of videos: ``[{id | video_id | url, transcript: [...] | transcripts: [...]}]``;
- ``{video_id: {begin, end, text}}`` excerpt sets (one cue per video, e.g. Whisper's Meanwhile set);
- chapter lists ``[{start, end, desc, transcript}]`` (one cue per chapter), alone or per video.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from chaffee_assets.ingest.captions import (
    CaptionError,
    cue_rows,
    detect_format,
    finish_cues,
    load_json_file,
    time_value,
)
from chaffee_assets.ingest.cues import Cue

_YOUTUBE_ID = re.compile(r"(?:youtu\.be/|[?&]v=|/shorts/|/embed/)([A-Za-z0-9_-]{11})")


def parse_transcript_collection(path: Path) -> dict[str, list[Cue]]:
    """The transcripts of every video in a multi-video JSON file, keyed by video id.

    CaptionError (naming the file) for anything else, including one video's transcript.
    """
    path = Path(path)
    source_name = str(path)
    fmt = detect_format(path)
    if fmt != "json":
        raise CaptionError(source_name, f"a {fmt} file holds one video's captions; use parse_caption_file")
    data = load_json_file(path)
    for recognises, read in _COLLECTIONS:
        if recognises(data):
            return read(data, source_name)
    if _is_chapter_list(data) or _single_video_shape(path):
        raise CaptionError(
            source_name, "holds one video's transcript, not a collection; use parse_caption_file"
        )
    raise CaptionError(source_name, "is not a transcript collection this reader knows")


def parse_chapter_file(path: Path) -> list[Cue]:
    """One video's chapter-merged transcript (``[{start, end, desc, transcript}]``): a cue per chapter."""
    source_name = str(path)
    data = load_json_file(Path(path))
    if not _is_chapter_list(data):
        raise CaptionError(source_name, "is not a chapter list ([{start, end, transcript}])")
    return chapter_cues(data, source_name)


def chapter_cues(chapters: list[Mapping[str, Any]], source_name: str) -> list[Cue]:
    cues = []
    for index, chapter in enumerate(chapters):
        start = time_value(chapter["start"], source_name, f"chapter {index} start")
        end = time_value(chapter.get("end", start), source_name, f"chapter {index} end")
        cues.append(Cue(start, end, str(chapter.get("transcript") or "")))
    return finish_cues(cues, source_name)


def _single_video_shape(path: Path) -> bool:
    from chaffee_assets.ingest.captions import parse_caption_file

    try:
        parse_caption_file(path)
    except CaptionError:
        return False
    return True


def _dicts(data: Any) -> bool:
    return isinstance(data, list) and all(isinstance(item, dict) for item in data)


def _is_cue_list(data: Any) -> bool:
    return _dicts(data) and all("start" in item and ({"duration", "dur", "end"} & set(item)) for item in data)


def _is_chapter_list(data: Any) -> bool:
    return (
        bool(data)
        and _dicts(data)
        and all("start" in item and isinstance(item.get("transcript"), str) for item in data)
    )


def _is_excerpt(data: Any) -> bool:
    return isinstance(data, dict) and {"begin", "end", "text"} <= set(data)


def _is_id_keyed(data: Any, inner: Callable[[Any], bool]) -> bool:
    return isinstance(data, dict) and bool(data) and all(inner(value) for value in data.values())


def _is_video_records(data: Any) -> bool:
    return (
        bool(data)
        and _dicts(data)
        and all(
            isinstance(item.get("transcript"), list) or isinstance(item.get("transcripts"), list)
            for item in data
        )
    )


def _read_id_keyed_cue_lists(data: Any, source_name: str) -> dict[str, list[Cue]]:
    return {str(video_id): cue_rows(items, source_name, str(video_id)) for video_id, items in data.items()}


def _read_id_keyed_excerpts(data: Any, source_name: str) -> dict[str, list[Cue]]:
    transcripts: dict[str, list[Cue]] = {}
    for video_id, excerpt in data.items():
        start = time_value(excerpt["begin"], source_name, f"{video_id}.begin")
        end = time_value(excerpt["end"], source_name, f"{video_id}.end")
        transcripts[str(video_id)] = finish_cues([Cue(start, end, str(excerpt["text"]))], source_name)
    return transcripts


def _read_video_records(data: Any, source_name: str) -> dict[str, list[Cue]]:
    transcripts: dict[str, list[Cue]] = {}
    for index, record in enumerate(data):
        video_id = _record_video_id(record, source_name, index)
        if video_id in transcripts:
            raise CaptionError(source_name, f"video {video_id} appears twice")
        if isinstance(record.get("transcript"), list):
            transcripts[video_id] = cue_rows(record["transcript"], source_name, video_id)
        elif _is_chapter_list(record["transcripts"]) or not record["transcripts"]:
            transcripts[video_id] = chapter_cues(record["transcripts"], source_name)
        else:
            transcripts[video_id] = cue_rows(record["transcripts"], source_name, video_id)
    return transcripts


def _record_video_id(record: Mapping[str, Any], source_name: str, index: int) -> str:
    for key in ("video_id", "id"):
        if isinstance(record.get(key), str) and record[key]:
            return record[key]
    for key in ("youtube", "url", "video_url"):
        match = _YOUTUBE_ID.search(str(record.get(key) or ""))
        if match:
            return match.group(1)
    raise CaptionError(source_name, f"entry {index} has no video id or YouTube URL")


_COLLECTIONS: list[tuple[Callable[[Any], bool], Callable[[Any, str], dict[str, list[Cue]]]]] = [
    (_is_video_records, _read_video_records),
    (lambda data: _is_id_keyed(data, _is_cue_list), _read_id_keyed_cue_lists),
    (lambda data: _is_id_keyed(data, _is_excerpt), _read_id_keyed_excerpts),
]
