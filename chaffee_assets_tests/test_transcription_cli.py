"""`chaffee transcribe`: one file, timestamped segments as text or JSON, errors as one line."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from chaffee_assets.cli.transcribe_cmd import register
from chaffee_assets.transcription import budget
from chaffee_assets_tests import whisper_tiny
from chaffee_assets_tests.speech_samples import speech
from chaffee_assets_tests.test_transcription_openai import FakeTranscriptionServer

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


def test_a_file_that_is_not_audio_says_error_once(capsys, tmp_path: Path, monkeypatch) -> None:
    not_audio = tmp_path / "notes.mp3"
    not_audio.write_text("not audio at all\n")
    # The upload is prepared (and refused) before any request, so no server is reached.
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-used")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:1/v1")
    status = _run(["transcribe", str(not_audio), "--engine", "openai"])
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith("error: cannot prepare") and "error: error:" not in err


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


# -- as a user runs it: the console script, the user's environment, the real embedded database ----

CHAFFEE = str(Path(sys.executable).parent / "chaffee")


@pytest.fixture
def openai_stand_in() -> Iterator[FakeTranscriptionServer]:
    fake = FakeTranscriptionServer()
    yield fake
    fake.close()


def _user_env(server: FakeTranscriptionServer, warehouse_url: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "OPENAI_API_KEY": "sk-user-key",
        "OPENAI_BASE_URL": server.base_url,
        "DATABASE_URL": warehouse_url,
        **extra,
    }


def _ledger(url: str) -> list[tuple[str | None, str, float, float]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT video_id, engine, audio_seconds, usd FROM asr_spend ORDER BY spend_id")
        return [(video, engine, seconds, float(usd)) for video, engine, seconds, usd in rows]


def test_openai_engine_with_the_key_set_prints_json_and_records_its_spend(
    openai_stand_in: FakeTranscriptionServer, warehouse_url: str
) -> None:
    done = subprocess.run(
        [CHAFFEE, "transcribe", str(speech("whisper/jfk.flac")), "--engine", "openai", "--json"],
        capture_output=True, text=True, timeout=300, env=_user_env(openai_stand_in, warehouse_url),
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    segments = json.loads(done.stdout)
    assert segments[0] == {"start": 0.0, "end": 2.0, "text": "words 0"}
    assert all(set(s) == {"start", "end", "text"} for s in segments)
    [upload] = openai_stand_in.uploads
    assert upload["auth"] == "Bearer sk-user-key" and upload["model"] == ["whisper-1"]
    cost = budget.estimate_cost(11.0, 0.006)
    assert done.stderr.strip().endswith(f"openai whisper-1, ${cost:.4f}")
    assert _ledger(warehouse_url) == [(None, "openai", pytest.approx(11.0, abs=0.01), pytest.approx(cost))]


def test_openai_engine_over_the_daily_budget_is_one_line_and_makes_no_call(
    openai_stand_in: FakeTranscriptionServer, warehouse_url: str
) -> None:
    env = _user_env(openai_stand_in, warehouse_url, CHAFFEE_DAILY_BUDGET_USD="0.0005")
    done = subprocess.run(
        [CHAFFEE, "transcribe", str(speech("whisper/jfk.flac")), "--engine", "openai", "--json"],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip

    assert done.returncode == 2
    assert done.stdout == "" and "Traceback" not in done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: over_budget: transcribing ") and "daily budget of $0.00" in line
    assert openai_stand_in.uploads == []
    assert _ledger(warehouse_url) == []


def test_every_engine_spelling_is_accepted_by_both_commands() -> None:
    from chaffee_assets.cli.main import build_parser

    parser = build_parser()
    for spelling in ("local", "local_whisper", "openai"):
        assert parser.parse_args(["transcribe", "x.mp3", "--engine", spelling]).engine == spelling
        assert parser.parse_args(["ingest", "--asr-engine", spelling]).asr_engine == spelling
