"""Caption and transcript parsing, on every real file in ../shared/realdata and on small inline samples."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from chaffee_assets.ingest.captions import (
    CaptionError,
    detect_format,
    parse_caption_file,
    parse_captions,
)
from chaffee_assets.ingest.cues import Cue
from chaffee_assets_tests.conftest import REALDATA, shared_path

INLINE_TIMING = re.compile(r"<(?:\d+:)?\d{2}:\d{2}\.\d{3}>")


def _files(folder: str, pattern: str) -> list[str]:
    """Names of the real files in a realdata folder, globbed when the tests are collected."""
    return sorted(p.relative_to(REALDATA / folder).as_posix() for p in (REALDATA / folder).glob(pattern))


VTT_FILES = _files("vtt", "*.vtt")
SRT_FILES = _files("srt", "*.srt")
COLLECTION_FILES = [
    "youtube-transcript-api_2018_transcripts.json",
    "huberman_health-ai-assistant/merged.json",
    "huberman_chapters_leonseet/andrew_huberman_episodes_processed_small.json",
    "whisper_meanwhile.json",
]
METADATA_FILES = ["huberman_health-ai-assistant/videos.json"]
# Every other JSON file there holds one video's transcript, so a new file is tested by default.
SINGLE_JSON_FILES = [
    name
    for name in _files("transcripts_json", "**/*.json")
    if name not in COLLECTION_FILES and name not in METADATA_FILES
]
YTDLP_INFO_FILES = _files("ytdlp_info", "*.json")


def _auto_vtt_files() -> list[str]:
    return [name for name in VTT_FILES if INLINE_TIMING.search((REALDATA / "vtt" / name).read_text("utf-8"))]


AUTO_VTT_FILES = _auto_vtt_files() if REALDATA.exists() else []


def assert_normalised(cues: list[Cue]) -> None:
    """The promises every parser keeps: sorted starts, end >= start, clean non-empty text."""
    for cue in cues:
        assert isinstance(cue.start, float) and isinstance(cue.end, float)
        assert 0 <= cue.start <= cue.end
        assert cue.text and cue.text == " ".join(cue.text.split())
        assert not re.search(r"</?[A-Za-z][^<>]*>|&(?:amp|lt|gt|quot|nbsp|#\d+);", cue.text), cue.text
    starts = [cue.start for cue in cues]
    assert starts == sorted(starts)


def test_every_real_caption_folder_was_found() -> None:
    shared_path("realdata")
    assert VTT_FILES and SRT_FILES and SINGLE_JSON_FILES and AUTO_VTT_FILES and YTDLP_INFO_FILES


# --------------------------------------------------------------------------- every real file


@pytest.mark.parametrize("name", VTT_FILES)
def test_real_vtt_parses_into_normalised_cues(name: str) -> None:
    cues = parse_caption_file(shared_path("realdata", "vtt", name))
    assert cues
    assert_normalised(cues)


@pytest.mark.parametrize("name", SRT_FILES)
def test_real_srt_parses_into_normalised_cues(name: str) -> None:
    cues = parse_caption_file(shared_path("realdata", "srt", name))
    assert cues
    assert_normalised(cues)


@pytest.mark.parametrize("name", SINGLE_JSON_FILES)
def test_real_single_video_json_parses_into_normalised_cues(name: str) -> None:
    cues = parse_caption_file(shared_path("realdata", "transcripts_json", name))
    assert cues
    assert_normalised(cues)


@pytest.mark.parametrize("name", YTDLP_INFO_FILES)
def test_ytdlp_metadata_is_rejected_as_not_captions(name: str) -> None:
    path = shared_path("realdata", "ytdlp_info", name)
    with pytest.raises(CaptionError, match="yt-dlp metadata.*not captions") as raised:
        parse_caption_file(path)
    assert str(path) in str(raised.value)


@pytest.mark.parametrize("name", METADATA_FILES)
def test_video_metadata_list_is_rejected_as_not_captions(name: str) -> None:
    with pytest.raises(CaptionError, match="video metadata records, not captions"):
        parse_caption_file(shared_path("realdata", "transcripts_json", name))


# --------------------------------------------------------------------------- YouTube auto captions


@pytest.mark.parametrize("name", AUTO_VTT_FILES)
def test_auto_vtt_has_no_rolling_repeats(name: str) -> None:
    cues = parse_caption_file(shared_path("realdata", "vtt", name))
    for previous, cue in zip(cues, cues[1:], strict=False):
        assert cue.text != previous.text
        assert not cue.text.startswith(previous.text + " "), (previous, cue)
        assert cue.start >= previous.start


@pytest.mark.parametrize("name", AUTO_VTT_FILES)
def test_auto_vtt_emits_every_spoken_word_once_in_order(name: str) -> None:
    """The words YouTube timed (lines with inline timings) come out once each, in order.

    The only other words allowed are lines of a single word, which YouTube writes without an
    inline timing (such as ``[Applause]``), and only up to how many such lines the file has.
    """
    path = shared_path("realdata", "vtt", name)
    raw_lines = path.read_text("utf-8").splitlines()
    timed_words = [word for line in raw_lines if INLINE_TIMING.search(line) for word in _words(line)]
    untimed_single_words = sum(
        1 for line in raw_lines if not INLINE_TIMING.search(line) and len(_words(line)) == 1
    )
    out_words = [word for cue in parse_caption_file(path) for word in cue.text.split()]

    remaining = iter(out_words)
    assert all(word in remaining for word in timed_words), "timed words missing or out of order"
    assert len(timed_words) <= len(out_words) <= len(timed_words) + untimed_single_words


def _words(line: str) -> list[str]:
    return re.sub(r"<[^>]*>", "", line).replace("&gt;", ">").split()


def test_auto_vtt_yields_a_known_passage_once_in_order() -> None:
    cues = parse_caption_file(shared_path("realdata", "vtt", "alwaisy_narrate__transcript.en.vtt"))
    text = " ".join(cue.text for cue in cues)
    passage = (
        "So what is the latest update on the Argentinian CVI? A lot of people are waiting for "
        "Argentina passport, right? The passport program, the citizenship by investment."
    )
    assert text.startswith(passage)
    assert text.count("Argentinian CVI?") == 1
    assert cues[0] == Cue(0.16, 2.31, "So what is the latest update on the")
    assert cues[1] == Cue(2.32, 4.95, "Argentinian CVI? A lot of people are")


def test_auto_vtt_decodes_speaker_change_entities() -> None:
    cues = parse_caption_file(shared_path("realdata", "vtt", "alwaisy_narrate__transcript.en.vtt"))
    assert any(cue.text.startswith(">> You can apply for citizenship") for cue in cues)


def test_old_colour_tag_auto_vtt_drops_style_header_and_colour_tags() -> None:
    cues = parse_caption_file(shared_path("realdata", "vtt", "t2o2_transcript_splitter__transcript.en.vtt"))
    assert cues[0] == Cue(3.17, 7.519, "good to be here I love Chicago alright")
    assert cues[1].text == "so yeah so my name is Travis cowlick"
    assert not any("::cue" in cue.text or "color" in cue.text for cue in cues)


def test_youtube_dl_vtt_with_a_cue_not_followed_by_a_blank_line() -> None:
    cues = parse_caption_file(shared_path("realdata", "vtt", "webvtt-py__youtube_dl.vtt"))
    assert [cue.text for cue in cues] == ["yeah", "what", "this will happen is I'm telling"]
    assert cues[0].start == 286.07


# --------------------------------------------------------------------------- known content


def test_manual_vtt_joins_multi_line_cues() -> None:
    cues = parse_caption_file(
        shared_path("realdata", "vtt", "richardadonnell_YouTube-Transcriber__transcript.en.vtt")
    )
    assert cues[0] == Cue(0.014, 2.597, "(upbeat music)")
    assert cues[1] == Cue(7.726, 11.51, "- Hi, everyone. Danny here from freelancetowin.com.")
    assert len(cues) == 656


def test_chaffee_srt_first_and_last_cue() -> None:
    cues = parse_caption_file(shared_path("realdata", "srt", "ask-dr-chaffee__RcBwvdVEAr8_subtitles.srt"))
    assert cues[0] == Cue(3.15, 5.79, "Okay, hi, everybody, we're live here.")
    assert cues[-1].start == 4421.74  # 01:13:41,740
    assert len(cues) == 902


def test_overlapping_srt_cues_are_kept_in_start_order() -> None:
    cues = parse_caption_file(
        shared_path("realdata", "srt", "atharvakalele_Video-Indexer__transcript.en.srt")
    )
    assert cues[:2] == [
        Cue(3.12, 5.839, "so from today onwards so we are going to"),
        Cue(5.04, 7.68, "start"),
    ]
    assert len(cues) == 2840


def test_clipsift_absurd_last_duration_is_clamped_to_its_words() -> None:
    cues = parse_caption_file(
        shared_path("realdata", "transcripts_json", "clipsift", "zEyEC34MY1A_transcript.json")
    )
    last = cues[-1]
    assert last.text == "and change them in different ways."
    assert last.start == 698.467
    # Six words at 2.5 words per second, instead of the 359301.532 s the file claims.
    assert last.end == pytest.approx(698.467 + 6 / 2.5)
    assert cues[-2].end - cues[-2].start == pytest.approx(5.0)


def test_timedtext_json_skips_chapter_markers_and_reads_string_times() -> None:
    path = shared_path("realdata", "transcripts_json", "huberman_health-ai-assistant", "2XMb3MD6g6Q.json")
    raw = json.loads(path.read_text("utf-8"))[0]["data"]
    cues = parse_caption_file(path)
    assert len(cues) == sum(1 for entry in raw if "text" in entry) == 299
    assert cues[0].start == 0.24 and cues[0].end == 6.96
    assert cues[0].text.startswith("Welcome to Huberman Lab Essentials")


def test_whisper_verbose_json_reads_segments() -> None:
    folder = shared_path("realdata", "transcripts_json", "huberman_whisper_DamirBogdan39")
    cues = parse_caption_file(folder / "how_to_prevent_treat_colds_flu.json")
    assert cues[0] == Cue(0.0, 2.28, "Welcome to the Huberman Lab Podcast,")
    assert len(cues) == 3304


# --------------------------------------------------------------------------- inline VTT / SRT edge cases


def test_vtt_note_style_settings_identifiers_entities_and_tags() -> None:
    vtt = (
        "\ufeffWEBVTT - with a title\r\n\r\n"
        "STYLE\r\n::cue { color: red }\r\n\r\n"
        "NOTE this is a comment\r\nspanning two lines\r\n\r\n"
        "intro\r\n00:00:01.000 --> 00:00:02.500 align:start position:0%\r\n"
        "<v Roger>Fish &amp; chips&nbsp;&#39;n&#39; <i>peas</i>\r\n"
        '<b>bold</b> <font color="red">red</font>\r\n\r\n'
        "00:00:03.000 --> 00:00:04.000\r\n\r\n"
        "00:00:05.000 --> 00:00:06.000\r\n   \r\n"
    )
    assert parse_captions(vtt, "vtt") == [Cue(1.0, 2.5, "Fish & chips 'n' peas bold red")]


def test_vtt_without_header_with_hours_less_and_past_24_hour_timestamps() -> None:
    vtt = "01:02.500 --> 01:04.000\nshort\n\n25:01:02.003 --> 25:01:03.000\nlong\n"
    assert parse_captions(vtt, "vtt") == [Cue(62.5, 64.0, "short"), Cue(90062.003, 90063.0, "long")]


def test_srt_with_comma_or_dot_milliseconds_and_tags() -> None:
    srt = "1\n00:00:01,5 --> 00:00:02,000\n<i>one</i>\n\n2\n00:00:03.250 --> 00:00:04.000\n{\\an8}two\n"
    assert parse_captions(srt, "srt") == [Cue(1.5, 2.0, "one"), Cue(3.25, 4.0, "two")]


def test_cues_out_of_order_are_sorted_by_start() -> None:
    srt = "1\n00:00:05,000 --> 00:00:06,000\nlater\n\n2\n00:00:01,000 --> 00:00:02,000\nearlier\n"
    assert [cue.text for cue in parse_captions(srt, "srt")] == ["earlier", "later"]


def test_timing_line_without_spaces_around_the_arrow() -> None:
    assert parse_captions("00:00:01.000-->00:00:02.000\nx\n", "vtt") == [Cue(1.0, 2.0, "x")]


def test_end_before_start_becomes_a_zero_length_cue() -> None:
    assert parse_captions("00:00:05.000 --> 00:00:04.000\nx\n", "vtt") == [Cue(5.0, 5.0, "x")]


def test_rolling_captions_without_inline_timings_are_unrolled() -> None:
    vtt = (
        "WEBVTT\n\n"
        "00:00:00.000 --> 00:00:02.000\nthe first line\n\n"
        "00:00:02.000 --> 00:00:04.000\nthe first line\nthe second line\n\n"
        "00:00:04.000 --> 00:00:06.000\nthe second line\nthe third line\n"
    )
    assert [cue.text for cue in parse_captions(vtt, "vtt")] == [
        "the first line",
        "the second line",
        "the third line",
    ]


def test_manual_captions_that_repeat_a_line_keep_both() -> None:
    vtt = "WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nNo.\n\n00:00:01.000 --> 00:00:02.000\nNo.\n"
    assert [cue.text for cue in parse_captions(vtt, "vtt")] == ["No.", "No."]


def test_empty_but_valid_vtt_gives_no_cues() -> None:
    assert parse_captions("WEBVTT\n\nNOTE nothing was said\n", "vtt") == []


def test_bytes_in_utf16_with_bom_are_decoded() -> None:
    data = "WEBVTT\n\n00:00:01.000 --> 00:00:02.000\ncafé\n".encode("utf-16")
    assert parse_captions(data, "vtt") == [Cue(1.0, 2.0, "café")]


def test_a_long_single_word_cue_is_not_clamped() -> None:
    srt = "1\n00:00:00,000 --> 00:00:45,000\n[Music]\n"
    assert parse_captions(srt, "srt") == [Cue(0.0, 45.0, "[Music]")]


# --------------------------------------------------------------------------- inline JSON, json3, srv3

JSON3 = json.dumps(
    {
        "wireMagic": "pb3",
        "pens": [{}],
        "events": [
            {"tStartMs": 0, "dDurationMs": 120000, "id": 1, "wpWinPosId": 1, "wsWinStyleId": 1},
            {
                "tStartMs": 160,
                "dDurationMs": 2150,
                "wWinId": 1,
                "segs": [{"utf8": "so"}, {"utf8": " what", "tOffsetMs": 160}],
            },
            {"tStartMs": 2310, "dDurationMs": 10, "wWinId": 1, "aAppend": 1, "segs": [{"utf8": "\n"}]},
            {
                "tStartMs": 2320,
                "dDurationMs": 2630,
                "wWinId": 1,
                "segs": [{"utf8": "is &amp; the"}, {"utf8": " latest", "tOffsetMs": 400}],
            },
        ],
    }
)


def test_json3_reads_segments_and_skips_events_without_words() -> None:
    assert parse_captions(JSON3, "json3") == [Cue(0.16, 2.31, "so what"), Cue(2.32, 4.95, "is & the latest")]


def test_json3_in_a_json_file_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "abc.en.json"
    path.write_text(JSON3)
    assert detect_format(path) == "json3"
    assert len(parse_caption_file(path)) == 2


def test_json3_format_requires_an_events_list() -> None:
    with pytest.raises(CaptionError, match="not YouTube json3"):
        parse_captions('[{"text": "a", "start": 0, "duration": 1}]', "json3")


def test_json3_with_no_events_is_empty_captions() -> None:
    assert parse_captions('{"wireMagic": "pb3", "events": []}', "json3") == []


SRV3 = """<?xml version="1.0" encoding="utf-8" ?><timedtext format="3">
<head><ws id="0"/><wp id="0"/></head>
<body>
<p t="160" d="2150" w="1"><s ac="0">so</s><s t="160" ac="0"> what</s></p>
<p t="2310" d="10" w="1" a="1">
</p>
<p t="2320" d="2630" w="1">it&amp;#39;s <s t="400">&lt;3</s></p>
</body>
</timedtext>
"""


def test_srv3_reads_paragraphs_and_word_spans() -> None:
    assert parse_captions(SRV3, "srv3") == [Cue(0.16, 2.31, "so what"), Cue(2.32, 4.95, "it's <3")]


def test_srv1_timedtext_is_read_too() -> None:
    xml = '<transcript><text start="1.5" dur="2">hello &amp;amp; bye</text></transcript>'
    assert parse_captions(xml, "srv3") == [Cue(1.5, 3.5, "hello & bye")]


def test_youtube_transcript_api_list() -> None:
    data = '[{"text": "a&#39;b", "start": 1.0, "duration": 2.0}, {"text": "", "start": 3, "duration": 1}]'
    assert parse_captions(data, "json") == [Cue(1.0, 3.0, "a'b")]


def test_empty_json_list_is_empty_captions() -> None:
    assert parse_captions("[]", "json") == []


# --------------------------------------------------------------------------- files that cannot be used


@pytest.mark.parametrize(
    ("filename", "content", "problem"),
    [
        ("truncated.json", b'[{"text": "hi", "start": 1.0, "dur', "not valid JSON"),
        ("garbage.vtt", b"this is not\na caption file\n", "no cue timing line"),
        ("garbage.srt", b"1\nhello\n", "no cue timing line"),
        ("binary.vtt", bytes(range(256)), "binary data"),
        ("empty.vtt", b"", "empty"),
        ("blank.srt", b"\n \n", "only whitespace"),
        ("badtime.vtt", b"WEBVTT\n\n00:00:0x.000 --> 00:00:02.000\nhi\n", "line 3: bad timestamp"),
        ("minutes.vtt", b"WEBVTT\n\n00:61:00.000 --> 01:02:00.000\nhi\n", "bad timestamp"),
        ("notes.txt", b"WEBVTT\n", "unsupported caption file type '.txt'"),
        ("shape.json", b'{"hello": "world"}', "no caption format a channel produces"),
        ("strings.json", b'[{"text": "hi", "start": "soon", "duration": 1}]', "expected a number"),
        ("broken.srv3", b"<timedtext><body><p t='1'>", "not valid timedtext XML"),
        ("other.xml", b"<html><body/></html>", "not YouTube timedtext"),
    ],
)
def test_unusable_file_raises_caption_error_naming_the_file(
    tmp_path: Path, filename: str, content: bytes, problem: str
) -> None:
    path = tmp_path / filename
    path.write_bytes(content)
    with pytest.raises(CaptionError) as raised:
        parse_caption_file(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: ")
    assert problem in message
    assert "\n" not in message


def test_missing_file_raises_caption_error(tmp_path: Path) -> None:
    with pytest.raises(CaptionError, match="cannot be read"):
        parse_caption_file(tmp_path / "absent.vtt")


def test_unknown_format_name_is_rejected() -> None:
    with pytest.raises(CaptionError, match="unknown caption format 'ass'"):
        parse_captions("", "ass")


@pytest.mark.parametrize(
    ("filename", "fmt"),
    [
        ("a.en.vtt", "vtt"),
        ("a.SRT", "srt"),
        ("a.en.json3", "json3"),
        ("a.en.srv3", "srv3"),
        ("a.json", "json"),
    ],
)
def test_detect_format_by_suffix(tmp_path: Path, filename: str, fmt: str) -> None:
    path = tmp_path / filename
    path.write_text("[]")
    assert detect_format(path) == fmt


# --------------------------------------------------------------------------- the evaluation libraries


def _eval_caption_files() -> list[str]:
    root = REALDATA.parent / "eval"
    return sorted(p.relative_to(root).as_posix() for p in root.glob("*/library/*.en.*"))


@pytest.mark.parametrize("name", _eval_caption_files())
def test_eval_library_captions_parse_without_losing_words(name: str) -> None:
    path = shared_path("eval", name)
    text_lines = [
        line
        for line in path.read_text("utf-8").splitlines()
        if line
        and "-->" not in line
        and not line.isdigit()
        and not line.startswith(("WEBVTT", "Kind:", "Language:"))
    ]
    cues = parse_caption_file(path)
    assert_normalised(cues)
    assert sum(len(cue.text.split()) for cue in cues) == sum(len(line.split()) for line in text_lines)
