"""`chaffee captions FILE`: readable and JSON output, picking a video, and one-line errors."""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from chaffee_assets.cli.captions_cmd import format_time, register
from chaffee_assets_tests.conftest import shared_path

REPO = Path(__file__).resolve().parent.parent


def _run(*argv: str) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="chaffee")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["captions", *argv])
    out, err = io.StringIO(), io.StringIO()
    status = args.handler(args, out=out, err=err)
    return status, out.getvalue(), err.getvalue()


def test_register_adds_a_captions_subcommand_with_help() -> None:
    parser = argparse.ArgumentParser(prog="chaffee")
    register(parser.add_subparsers(dest="command"))
    assert "show the timed text in a caption" in parser.format_help()


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0, "00:00.0"), (62.54, "01:02.5"), (3599.96, "59:59.9"), (3600, "1:00:00.0"), (4421.74, "1:13:41.7")],
)
def test_times_are_mm_ss_then_h_mm_ss_past_an_hour_truncated_to_tenths(seconds: float, shown: str) -> None:
    assert format_time(seconds) == shown


def test_readable_output_is_one_line_per_cue() -> None:
    path = shared_path("realdata", "srt", "ask-dr-chaffee__RcBwvdVEAr8_subtitles.srt")
    status, out, err = _run(str(path))
    lines = out.splitlines()
    assert status == 0 and err == ""
    assert lines[0] == "[00:03.1 → 00:05.7] Okay, hi, everybody, we're live here."
    assert lines[-1].startswith("[1:13:41.7 → 1:13:48.9] I am so sorry.")
    assert len(lines) == 902


def test_json_output_is_a_list_of_start_end_text_in_seconds() -> None:
    path = shared_path("realdata", "vtt", "webvtt-py__youtube_dl.vtt")
    status, out, _ = _run(str(path), "--json")
    assert status == 0
    assert json.loads(out) == [
        {"start": 286.07, "end": 286.47, "text": "yeah"},
        {"start": 286.47, "end": 304.08, "text": "what"},
        {"start": 304.08, "end": 305.069, "text": "this will happen is I'm telling"},
    ]


def test_video_option_picks_one_transcript_from_a_collection() -> None:
    path = shared_path("realdata", "transcripts_json", "youtube-transcript-api_2018_transcripts.json")
    status, out, _ = _run(str(path), "--video", "AwmHb44_ouw", "--json")
    assert status == 0
    assert json.loads(out)[0] == {
        "start": 2.959,
        "end": 10.2,
        "text": "if you didn't know already how to do it",
    }


def test_collection_without_video_option_is_an_error_that_says_to_pick_one() -> None:
    path = shared_path("realdata", "transcripts_json", "youtube-transcript-api_2018_transcripts.json")
    status, out, err = _run(str(path))
    assert status == 2 and out == ""
    assert err.startswith(f"error: {path}: holds 30 videos' transcripts")
    assert "--video ID" in err


def test_unknown_video_id_lists_what_the_file_holds() -> None:
    path = shared_path("realdata", "transcripts_json", "huberman_health-ai-assistant", "merged.json")
    status, _, err = _run(str(path), "--video", "nope")
    assert status == 2
    assert "has no video 'nope' (it holds 10: 2XMb3MD6g6Q" in err


def test_video_option_on_a_single_video_file_says_to_drop_it() -> None:
    path = shared_path("realdata", "srt", "ask-dr-chaffee__RcBwvdVEAr8_subtitles.srt")
    status, _, err = _run(str(path), "--video", "RcBwvdVEAr8")
    assert status == 2
    assert err == f"error: {path}: holds one video's captions; run without --video\n"


def test_video_option_on_an_unusable_file_reports_the_file_problem(tmp_path: Path) -> None:
    path = tmp_path / "empty.json"
    path.write_bytes(b"")
    status, _, err = _run(str(path), "--video", "abc")
    assert status == 2
    assert err == f"error: {path}: is empty (0 bytes)\n"


def test_bad_file_prints_one_error_line_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('[{"text": "hi", "sta')
    status, out, err = _run(str(path))
    assert (status, out) == (2, "")
    assert err == f"error: {path}: is not valid JSON (Unterminated string starting at at line 1)\n"


def test_command_in_a_subprocess_exits_2_without_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "garbage.vtt"
    path.write_bytes(b"\x00\x01\x02 not captions")
    program = (
        "import argparse, sys\n"
        "from chaffee_assets.cli.captions_cmd import register\n"
        "parser = argparse.ArgumentParser(prog='chaffee')\n"
        "register(parser.add_subparsers(dest='command', required=True))\n"
        "args = parser.parse_args(sys.argv[1:])\n"
        "sys.exit(args.handler(args))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program, "captions", str(path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == f"error: {path}: is binary data, not a caption file\n"


def test_command_in_a_subprocess_prints_cues() -> None:
    path = shared_path("realdata", "vtt", "Longson-cmd__How_to_Evaluate_Your_Own_Level_of_English.en.vtt")
    program = (
        "import argparse, sys\n"
        "from chaffee_assets.cli.captions_cmd import register\n"
        "parser = argparse.ArgumentParser(prog='chaffee')\n"
        "register(parser.add_subparsers(dest='command', required=True))\n"
        "args = parser.parse_args(sys.argv[1:])\n"
        "sys.exit(args.handler(args))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program, "captions", str(path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert (
        done.stdout.splitlines()[0]
        == "[00:00.0 → 00:04.5] Hello everybody! This is Jack Askew from to fluency.com"
    )


def test_an_evaluation_sets_chapter_list_is_shown_a_cue_per_chapter(tmp_path: Path) -> None:
    path = tmp_path / "episode_chapters.json"
    intro, sleep = " ".join(["welcome to the podcast"] * 15), " ".join(["light in the morning"] * 15)
    chapters = [
        {"start": 0, "end": 201, "desc": "Intro", "transcript": intro},
        {"start": 201, "end": 280.5, "desc": "Sleep", "transcript": sleep},
    ]
    path.write_text(json.dumps(chapters))
    status, out, err = _run(str(path))
    assert (status, err) == (0, "")
    assert out.splitlines() == [f"[00:00.0 → 03:21.0] {intro}", f"[03:21.0 → 04:40.5] {sleep}"]


def test_escape_sequences_in_a_caption_never_reach_the_terminal(tmp_path: Path) -> None:
    # ESC [2J clears the screen, ESC ]0; retitles the window, 0x9b is the 8-bit CSI.
    path = tmp_path / "hostile.en.vtt"
    path.write_text(
        "WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nfirst \x1b[2J\x1b]0;pwned\x07words\n\n"
        "00:00:02.000 --> 00:00:03.000\nsecond\x9b31m line\n",
        encoding="utf-8",
    )
    status, out, err = _run(str(path))
    assert (status, err) == (0, "")
    assert not any(ch in out for ch in "\x1b\x07\x9b")
    assert out.splitlines() == [
        "[00:01.0 → 00:02.0] first [2J]0;pwnedwords",
        "[00:02.0 → 00:03.0] second31m line",
    ]
