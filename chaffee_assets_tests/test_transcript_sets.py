"""Evaluation sets' transcript files (many videos in one JSON file, chapter-merged text), on the real
files in ../shared/realdata: read into the same normalised cues as captions."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from chaffee_assets.ingest.captions import CaptionError, parse_caption_file
from chaffee_assets.ingest.cues import Cue
from chaffee_assets.retrieval.transcript_sets import parse_chapter_file, parse_transcript_collection
from chaffee_assets_tests.conftest import shared_path
from chaffee_assets_tests.test_captions import (
    COLLECTION_FILES,
    SINGLE_JSON_FILES,
    SRT_FILES,
    VTT_FILES,
    assert_normalised,
)


@pytest.mark.parametrize("name", COLLECTION_FILES)
def test_real_collection_parses_into_transcripts_keyed_by_video_id(name: str) -> None:
    transcripts = parse_transcript_collection(shared_path("realdata", "transcripts_json", name))
    assert len(transcripts) > 1
    for video_id, cues in transcripts.items():
        assert re.fullmatch(r"[A-Za-z0-9_-]{11}", video_id)
        assert cues
        assert_normalised(cues)


@pytest.mark.parametrize("name", COLLECTION_FILES)
def test_real_collection_is_no_caption_format_and_the_message_says_where_it_is_read(name: str) -> None:
    with pytest.raises(CaptionError, match=r"no caption format a channel produces.*transcript_sets"):
        parse_caption_file(shared_path("realdata", "transcripts_json", name))


@pytest.mark.parametrize("name", SINGLE_JSON_FILES)
def test_collection_parser_rejects_a_single_video_file(name: str) -> None:
    with pytest.raises(CaptionError, match="one video's transcript, not a collection"):
        parse_transcript_collection(shared_path("realdata", "transcripts_json", name))


@pytest.mark.parametrize("folder", ["vtt", "srt"])
def test_collection_parser_rejects_caption_files(folder: str) -> None:
    name = (VTT_FILES if folder == "vtt" else SRT_FILES)[0]
    with pytest.raises(CaptionError, match="holds one video's captions"):
        parse_transcript_collection(shared_path("realdata", folder, name))


def test_youtube_transcript_api_collection_decodes_legacy_entities() -> None:
    transcripts = parse_transcript_collection(
        shared_path("realdata", "transcripts_json", "youtube-transcript-api_2018_transcripts.json")
    )
    assert len(transcripts) == 30
    assert sum(map(len, transcripts.values())) == 2155
    assert transcripts["AwmHb44_ouw"][0] == Cue(2.959, 10.2, "if you didn't know already how to do it")


def test_merged_collection_drops_empty_chapter_rows() -> None:
    transcripts = parse_transcript_collection(
        shared_path("realdata", "transcripts_json", "huberman_health-ai-assistant", "merged.json")
    )
    assert len(transcripts) == 10
    assert transcripts["alVWRl_X_AA"][0].start == 0.24


def test_chapter_merged_collection_keys_by_youtube_url_and_gives_a_cue_per_chapter() -> None:
    transcripts = parse_transcript_collection(
        shared_path(
            "realdata",
            "transcripts_json",
            "huberman_chapters_leonseet",
            "andrew_huberman_episodes_processed_small.json",
        )
    )
    assert len(transcripts) == 11
    first = transcripts["sxgCC4H1dl8"][0]
    assert (first.start, first.end) == (0.0, 201.0)
    assert first.text.startswith("welcome to the huberman Lab podcast")


def test_whisper_meanwhile_is_a_collection_of_one_timed_excerpt_per_video() -> None:
    transcripts = parse_transcript_collection(
        shared_path("realdata", "transcripts_json", "whisper_meanwhile.json")
    )
    assert len(transcripts) == 64
    [excerpt] = transcripts["1YOmY-Vjy-o"]
    assert (excerpt.start, excerpt.end) == (64.0, 131.0)
    assert excerpt.text.startswith("FOLKS, IF YOU WATCH THE SHOW, YOU KNOW I SPEND")


def test_chapter_list_for_one_video(tmp_path: Path) -> None:
    words = " ".join(["so"] * 40)
    path = tmp_path / "chapters.json"
    path.write_text(
        json.dumps(
            [
                {
                    "start": 0,
                    "end": 90.5,
                    "desc": "Intro",
                    "transcript": words,
                    "sentencepiece_token_length": 40,
                }
            ]
        )
    )
    assert parse_chapter_file(path) == [Cue(0.0, 90.5, words)]
    # Not a caption format: the caption parser refuses it rather than reading it as empty captions.
    with pytest.raises(CaptionError, match="no caption format a channel produces"):
        parse_caption_file(path)
