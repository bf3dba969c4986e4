"""The demo's sample library: it parses, lists every video, and its golden queries point inside it."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import chaffee_assets
from chaffee_assets.ingest.captions import parse_caption_file
from chaffee_assets.ingest.cues import Cue
from chaffee_assets.ingest.library import LibrarySource
from chaffee_assets.ingest.ytdlp_metadata import caption_languages, load_info_json

SAMPLE = Path(chaffee_assets.__file__).resolve().parent / "sample_library"
YOUTUBE_ID = re.compile(r"^[A-Za-z0-9_-]{11}$")
AUTO_ID = "-smplOxLect"


def _info_files() -> list[Path]:
    return sorted(SAMPLE.glob("*.info.json"))


def _caption_files() -> list[Path]:
    return sorted([*SAMPLE.glob("*.vtt"), *SAMPLE.glob("*.srt")])


def _video_ids() -> list[str]:
    return [path.name.removesuffix(".info.json") for path in _info_files()]


def _golden() -> list[dict[str, Any]]:
    lines = (SAMPLE / "golden_queries.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


@pytest.fixture(scope="module")
def library() -> LibrarySource:
    return LibrarySource(SAMPLE)


@pytest.fixture(scope="module")
def cues_by_id(library: LibrarySource) -> dict[str, list[Cue]]:
    cues: dict[str, list[Cue]] = {}
    for video_id in _video_ids():
        video = library.video(video_id)
        assert video is not None, video_id
        cues[video_id] = library.fetch_captions(video).cues
    return cues


def test_six_videos_with_youtube_shaped_ids_one_starting_with_a_dash() -> None:
    ids = _video_ids()
    assert len(ids) == 6
    assert all(YOUTUBE_ID.match(video_id) and "smpl" in video_id for video_id in ids), ids
    assert any(video_id.startswith("-") for video_id in ids)


def test_caption_formats_are_mixed_like_real_downloads() -> None:
    names = [path.name for path in _caption_files()]
    assert len(names) == 6
    assert sum(name.endswith(".en.vtt") for name in names) == 4
    assert sum(name.endswith(".en.srt") for name in names) == 2
    auto = (SAMPLE / f"{AUTO_ID}.en.vtt").read_text(encoding="utf-8")
    # YouTube's auto-caption shape: word timings, positioned cues, no capitals.
    assert "<c> " in auto and "align:start position:0%" in auto
    assert auto.split("\n\n", 1)[1] == auto.split("\n\n", 1)[1].lower()


@pytest.mark.parametrize("path", _caption_files(), ids=lambda p: p.name)
def test_every_caption_file_parses_with_increasing_times(path: Path) -> None:
    cues = parse_caption_file(path)
    assert cues
    assert all(cue.end >= cue.start for cue in cues)
    assert all(a.start < b.start and a.end <= b.start + 0.001 for a, b in zip(cues, cues[1:], strict=False))


@pytest.mark.parametrize("info_path", _info_files(), ids=lambda p: p.name)
def test_info_json_is_consistent_with_its_captions(info_path: Path, cues_by_id: dict[str, list[Cue]]) -> None:
    info = load_info_json(info_path)
    video_id = info["id"]
    assert info_path.name == f"{video_id}.info.json"
    published = datetime.fromtimestamp(info["timestamp"], tz=UTC)
    assert published.strftime("%Y%m%d") == info["upload_date"]
    assert info["channel_id"] == "UCzoRyR_nlesKZuOlEjWRXQQ"
    assert "not a real video" in info["description"]
    cues = cues_by_id[video_id]
    assert abs(cues[-1].end - info["duration"]) <= 2.0
    words = sum(len(cue.text.split()) for cue in cues)
    assert 600 <= words <= 1100
    assert 130 <= words / (cues[-1].end / 60) <= 170  # about 150 words a minute


def test_library_lists_every_video_and_skips_none(library: LibrarySource) -> None:
    assert library.skipped() == []
    listed = sorted(v.video_id for day in library.publish_dates() for v in library.videos_published_on(day))
    assert listed == _video_ids()


def test_captions_are_marked_manual_or_automatic_in_the_info_json() -> None:
    for info_path in _info_files():
        info = load_info_json(info_path)
        languages = caption_languages(info)
        if info["id"] == AUTO_ID:
            assert languages.automatic == {"en"} and not languages.manual
        else:
            assert languages.manual == {"en"} and not languages.automatic


def test_auto_captions_come_back_without_rolling_repeats(
    library: LibrarySource, cues_by_id: dict[str, list[Cue]]
) -> None:
    video = library.video(AUTO_ID)
    assert video is not None
    track = library.fetch_captions(video)
    assert track.origin.endswith(f"{AUTO_ID}.en.vtt")
    cues = cues_by_id[AUTO_ID]
    texts = [cue.text for cue in cues]
    assert all("<" not in text for text in texts)
    assert all(not b.startswith(a) and not a.endswith(b) for a, b in zip(texts, texts[1:], strict=False))
    # Each caption line appears once in the file as it is spoken: the unrolled words are exactly those.
    raw = (SAMPLE / f"{AUTO_ID}.en.vtt").read_text(encoding="utf-8")
    spoken = [line for line in raw.splitlines() if "<c>" in line]
    assert len(cues) == len(spoken)


def test_golden_queries_point_inside_their_videos(cues_by_id: dict[str, list[Cue]]) -> None:
    golden = _golden()
    assert 8 <= len(golden) <= 12
    assert {q["video_id"] for q in golden} == set(cues_by_id)
    for query in golden:
        assert set(query) == {"question", "video_id", "start_s", "end_s"}
        cues = cues_by_id[query["video_id"]]
        assert cues[0].start <= query["start_s"] < query["end_s"] <= cues[-1].end, query
