"""`chaffee transcribe`: one file, timestamped segments as text or JSON, errors as one line."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from chaffee_assets.cli.transcribe_cmd import register
from chaffee_assets_tests import whisper_tiny
from chaffee_assets_tests.speech_samples import speech

tiny_whisper_model = whisper_tiny.tiny_whisper_model  # the session fixture that builds the model


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="chaffee")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.handler(args)


def test_json_output_is_a_list_of_timed_segments(tiny_whisper_model: Path, capsys) -> None:
    audio = speech("whisper/jfk.flac")
    status = _run(
        ["transcribe", str(audio), "--engine", "local", "--model", str(tiny_whisper_model), "--json"]
    )

    assert status == 0
    segments = json.loads(capsys.readouterr().out)
    assert segments and all(set(s) == {"start", "end", "text"} for s in segments)
    assert all(0 <= s["start"] <= s["end"] <= 11.0 for s in segments)


def test_text_output_has_a_timestamp_per_line(tiny_whisper_model: Path, capsys) -> None:
    status = _run(["transcribe", str(speech("deepspeech/LDC93S1.wav")), "--model", str(tiny_whisper_model)])
    out, err = capsys.readouterr()
    assert status == 0
    assert out.splitlines()[0].startswith("[00:00:0")
    assert "local_whisper" in err


def test_missing_file_is_one_error_line(capsys, tmp_path: Path) -> None:
    status = _run(["transcribe", str(tmp_path / "nope.mp3")])
    out, err = capsys.readouterr()
    assert status == 2
    assert err.startswith("error: no such audio file") and "Traceback" not in err


def test_unavailable_engine_is_one_error_line(capsys, monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_ADMIN_KEY", raising=False)
    status = _run(["transcribe", str(speech("whisper/jfk.flac")), "--engine", "openai"])
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith("error: engine_unavailable:") and "OPENAI_API_KEY" in err


def test_every_option_has_help() -> None:
    parser = argparse.ArgumentParser(prog="chaffee")
    register(parser.add_subparsers(dest="command"))
    sub = parser._subparsers._group_actions[0].choices["transcribe"]  # type: ignore[union-attr]
    for action in sub._actions:
        if not isinstance(action, argparse._HelpAction):
            assert action.help, action.dest


def test_bad_engine_choice_is_rejected_by_argparse() -> None:
    with pytest.raises(SystemExit) as caught:
        _run(["transcribe", "x.mp3", "--engine", "gpu"])
    assert caught.value.code == 2
