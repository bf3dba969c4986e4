"""yt-dlp info files and flat listings, on every file in realdata/ytdlp_info and ytdlp_flat_playlist."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from chaffee_assets.ingest.videos import AVAILABILITIES
from chaffee_assets.ingest.ytdlp_metadata import (
    MetadataError,
    availability_of,
    caption_languages,
    parse_flat_listing,
    published_at_of,
    read_flat_listing,
    read_info_json,
    video_from_info,
)
from chaffee_assets_tests.conftest import shared_path

# Every file in realdata/ytdlp_info and what it must give: a video id, or an error.
INFO_FILES = {
    "test_AeonCo_2_emyi4z-O0ls.info.json": "emyi4z-O0ls",
    "tubesync__metadata_2023-06-29.json": "JjQDik3yNhA",  # a full info dict without `_type`
    "tubesync__metadata_low_formats.json": "gogEJyoSB9s",
    "pinchflat__example.info.json": "ABC123",
    "pinchflat__channel_source_metadata.json": MetadataError,  # a channel's playlist dict
}


def test_the_table_covers_every_recorded_info_file() -> None:
    on_disk = {p.name for p in shared_path("realdata", "ytdlp_info").iterdir()}
    assert on_disk == set(INFO_FILES)


@pytest.mark.parametrize("name", sorted(INFO_FILES))
def test_every_recorded_info_file_parses_or_is_rejected_naming_the_file(name: str) -> None:
    path = shared_path("realdata", "ytdlp_info", name)
    expected = INFO_FILES[name]
    if expected is MetadataError:
        with pytest.raises(MetadataError, match=name) as error:
            read_info_json(path)
        assert "playlist" in str(error.value)
        return
    video = read_info_json(path, source="youtube")
    assert video.video_id == expected
    assert video.title and video.published_at is not None and video.published_at.tzinfo is UTC
    assert video.availability in AVAILABILITIES
    assert video.url == f"https://www.youtube.com/watch?v={expected}"


def test_ted_ed_info_gives_every_field() -> None:
    video = read_info_json(shared_path("realdata", "ytdlp_info", "test_AeonCo_2_emyi4z-O0ls.info.json"))
    assert video.title == "How to outsmart the Prisoner’s Dilemma - Lucas Husted"
    # `timestamp` 1598540436 is the exact instant; upload_date 20200827 is only its day.
    assert video.published_at == datetime(2020, 8, 27, 15, 0, 36, tzinfo=UTC)
    assert video.duration_s == 344.0
    assert video.channel == "TED-Ed" and video.channel_id == "UCsooa4yRKGN_zEE8iknghZA"
    assert "prisoner's dilemma" in video.tags
    assert video.thumbnail_url == "https://i.ytimg.com/vi_webp/emyi4z-O0ls/maxresdefault.webp"
    assert video.availability == "available"
    assert video.description and video.description.startswith("Puzzle through the classic game theory")


def test_a_finished_stream_is_dated_by_its_release_timestamp() -> None:
    video = read_info_json(shared_path("realdata", "ytdlp_info", "tubesync__metadata_low_formats.json"))
    assert video.published_at == datetime.fromtimestamp(1655488789, tz=UTC)
    assert video.availability == "available"  # live_status 'was_live': a recording exists


def test_a_day_only_date_is_midnight_utc() -> None:
    video = read_info_json(shared_path("realdata", "ytdlp_info", "tubesync__metadata_2023-06-29.json"))
    assert video.published_at == datetime(2022, 8, 5, tzinfo=UTC)


def test_caption_language_lists_are_read_without_live_chat() -> None:
    low = json.loads(shared_path("realdata", "ytdlp_info", "tubesync__metadata_low_formats.json").read_text())
    languages = caption_languages(low)
    assert languages.manual == frozenset()  # its only `subtitles` key is live_chat
    assert "en" in languages.automatic


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"availability": "public"}, "available"),
        ({"availability": "unlisted"}, "available"),
        ({"availability": "private"}, "private"),
        ({"availability": "needs_auth"}, "private"),
        ({"availability": "subscriber_only"}, "members_only"),
        ({"availability": "premium_only"}, "members_only"),
        ({"availability": "public", "live_status": "is_live"}, "live"),
        ({"availability": "public", "live_status": "is_upcoming"}, "upcoming"),
        ({"availability": "public", "live_status": "post_live"}, "live"),
        ({"availability": "public", "live_status": "was_live", "was_live": True}, "available"),
        ({"is_live": True}, "live"),
        ({"title": "[Deleted video]"}, "deleted"),
        ({"title": "[Private video]"}, "private"),
        ({}, "available"),
    ],
)
def test_availability_mapping(fields: dict, expected: str) -> None:
    assert availability_of(fields) == expected


def test_date_precedence_and_absence() -> None:
    assert published_at_of(
        {"release_timestamp": 1700000000, "upload_date": "20000101"}
    ) == datetime.fromtimestamp(1700000000, tz=UTC)
    assert published_at_of({"release_date": "20240229"}) == datetime(2024, 2, 29, tzinfo=UTC)
    assert published_at_of({"upload_date": "2024-02-29"}) is None  # not yt-dlp's format
    assert published_at_of({}) is None


def test_an_info_without_any_date_gives_a_video_without_a_date() -> None:
    # The library reports such a video as skipped; the parser itself does not guess a date.
    video = video_from_info({"id": "abc", "title": "t"}, source="library")
    assert video.published_at is None and video.partition_date is None


def test_a_truncated_info_file_is_rejected_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "abc.info.json"
    path.write_text('{"id": "abc", "title": "cut', encoding="utf-8")
    with pytest.raises(MetadataError, match="abc.info.json.*not valid JSON"):
        read_info_json(path)


def test_a_flat_entry_is_not_taken_for_a_full_info() -> None:
    line = shared_path("realdata", "ytdlp_flat_playlist", "videos_DrAnthonyChaffee.json").read_text()
    with pytest.raises(MetadataError, match="flat-listing entry"):
        video_from_info(json.loads(line), source="youtube", origin="x")


def test_the_real_chaffee_listing_has_572_videos_and_no_dates() -> None:
    entries = read_flat_listing(
        shared_path("realdata", "ytdlp_flat_playlist", "videos_anthonychaffeemd.json")
    )
    assert len(entries) == 572
    assert all(e.published_at is None for e in entries)  # a flat listing carries no publish dates
    assert {e.channel_id for e in entries} == {"UCzoRyR_nlesKZuOlEjWRXQQ"}
    first = entries[0]
    assert first.video_id == "E1Yk-o8xwjw" and first.duration_s == 6775.0
    assert first.title == "My Role in Healing Humanity - Trailer World Premiere!"
    assert "-pYI_37Xli4" in {e.video_id for e in entries}
    members = {e.video_id for e in entries if e.availability == "members_only"}
    assert members == {"-pYI_37Xli4", "NZ6947ZwhYk", "93b3-3h5ooc", "x6XSRbuBCd4"}


def test_a_sparse_real_listing_entry_parses() -> None:
    (entry,) = read_flat_listing(
        shared_path("realdata", "ytdlp_flat_playlist", "videos_DrAnthonyChaffee.json")
    )
    assert entry.video_id == "ZBDqvXeMH3w" and entry.description is None
    assert entry.thumbnail_url and "hqdefault" in entry.thumbnail_url


def test_a_listing_as_a_json_array_or_a_playlist_dict_gives_the_same_entries() -> None:
    path = shared_path("realdata", "ytdlp_flat_playlist", "videos_anthonychaffeemd.json")
    objects = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    as_lines = [e.video_id for e in read_flat_listing(path)]
    assert [e.video_id for e in parse_flat_listing(json.dumps(objects))] == as_lines
    playlist = {
        "_type": "playlist",
        "id": "UCzoRyR_nlesKZuOlEjWRXQQ",
        "entries": [{"_type": "playlist", "entries": objects}],
    }
    assert [e.video_id for e in parse_flat_listing(json.dumps(playlist))] == as_lines


def test_the_real_channel_metadata_is_a_listing_with_no_videos() -> None:
    path = shared_path("realdata", "ytdlp_info", "pinchflat__channel_source_metadata.json")
    assert read_flat_listing(path) == []


def test_a_listing_with_a_broken_line_names_the_file_and_line() -> None:
    with pytest.raises(MetadataError, match="listing.jsonl: line 2"):
        parse_flat_listing('{"id": "a", "title": "x"}\n{"id": \n', origin="listing.jsonl")


def test_a_listing_repeating_a_video_keeps_it_once() -> None:
    text = '{"id": "a", "title": "x"}\n{"id": "a", "title": "y"}\n'
    assert [(e.video_id, e.title) for e in parse_flat_listing(text)] == [("a", "x")]
