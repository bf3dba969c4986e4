"""Seeded test recordings with exact truth, the scores a labelling earns on them, and the reference labeller.

Recordings are composed from real speech with known speakers (LibriSpeech utterances) in the channel's
four kinds: monologue, interview, live Q&A with callers (callers band-limited like a phone line), and a
recording without the host. The host is enrolled from utterances that are not in the test recording.
The AMI meeting excerpts are the hard, real case: a speaker who recurs across meetings is enrolled
from one meeting and looked for in another.

Scores are over voiced time: the frames where the truth has a speaker and WebRTC's least aggressive
voice detector, run on that speaker's clean source, hears speech (pauses inside a LibriSpeech
utterance are not speech). Host-vs-not-host agreement is the share of those frames labelled right;
the false-host rate is the share of frames where only other voices speak that are labelled host.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from chaffee_assets.speakers.encoder import FRAME_S, SAMPLE_RATE, VoiceEncoder
from chaffee_assets.speakers.labelling import (
    OTHER,
    Labelling,
    Profile,
    Turn,
    as_float,
    normalise_loudness,
)
from chaffee_assets.speakers.vad import voiced_frames
from chaffee_assets.transcription.audio import decode

KINDS = ("monologue", "interview", "live_qa", "no_host")
HOST = "host"


@dataclass(frozen=True)
class Span:
    start_s: float
    end_s: float
    speaker: str


@dataclass
class Recording:
    """A test recording: its samples and who speaks when (voiced frames per speaker)."""

    name: str
    kind: str
    host: str  # the speaker id of the host (absent from a no-host recording)
    samples: np.ndarray
    truth: list[Span] = field(default_factory=list)
    voiced: np.ndarray | None = None  # per frame: truth speech heard by the detector

    @property
    def duration_s(self) -> float:
        return len(self.samples) / SAMPLE_RATE


@dataclass(frozen=True)
class Case:
    """A host's enrolment audio and the recordings to label with it."""

    host: str
    enrolment: list[np.ndarray]
    recordings: list[Recording]
    condition: str


def _frames(seconds: float) -> int:
    return int(round(seconds / FRAME_S))


def truth_masks(recording: Recording) -> tuple[np.ndarray, np.ndarray]:
    """Per frame: (host speaks, only others speak), both within the scored voiced frames."""
    total = _frames(recording.duration_s)
    host = np.zeros(total, dtype=bool)
    other = np.zeros(total, dtype=bool)
    for span in recording.truth:
        target = host if span.speaker == recording.host else other
        target[_frames(span.start_s) : _frames(span.end_s)] = True
    voiced = recording.voiced if recording.voiced is not None else (host | other)
    voiced = np.pad(voiced, (0, max(0, total - len(voiced))))[:total]
    return host & voiced, other & ~host & voiced


def predicted_host(turns: Iterable[Turn], host_name: str, total: int) -> np.ndarray:
    mask = np.zeros(total, dtype=bool)
    for turn in turns:
        if turn.speaker == host_name:
            mask[_frames(turn.start_s) : _frames(turn.end_s)] = True
    return mask


@dataclass(frozen=True)
class Score:
    voiced_s: float
    agree_s: float
    other_s: float
    false_host_s: float
    host_s: float
    missed_host_s: float

    @property
    def agreement(self) -> float:
        return self.agree_s / self.voiced_s if self.voiced_s else 1.0

    @property
    def false_host_rate(self) -> float:
        return self.false_host_s / self.other_s if self.other_s else 0.0

    def __add__(self, other: Score) -> Score:
        return Score(*(a + b for a, b in zip(self.__dict__.values(), other.__dict__.values(), strict=True)))


ZERO = Score(0, 0, 0, 0, 0, 0)


def score(recording: Recording, predicted: np.ndarray) -> Score:
    host, other = truth_masks(recording)
    predicted = np.pad(predicted, (0, max(0, len(host) - len(predicted))))[: len(host)]
    scored = host | other
    agree = (predicted == host) & scored
    return Score(
        voiced_s=scored.sum() * FRAME_S,
        agree_s=agree.sum() * FRAME_S,
        other_s=other.sum() * FRAME_S,
        false_host_s=(predicted & other).sum() * FRAME_S,
        host_s=host.sum() * FRAME_S,
        missed_host_s=(~predicted & host).sum() * FRAME_S,
    )


# --- The reference: Resemblyzer's partial windows every 0.4 s against the profile at one threshold ---


def reference_label(
    samples: np.ndarray, host: Profile, encoder: VoiceEncoder, threshold: float, hop_s: float = 0.4
) -> Labelling:
    """Each frame is the host when the window centred nearest to it is within `threshold` of the profile."""
    samples = as_float(samples)
    frames = encoder.frames(normalise_loudness(samples, np.ones(_frames(len(samples) / SAMPLE_RATE), bool)))
    window, hop = encoder.window_frames, _frames(hop_s)
    starts = np.arange(0, max(1, len(frames) - window + 1), hop)
    similarity = encoder.embed(frames, starts) @ host.vector
    centres = starts + window // 2
    nearest = np.clip(np.searchsorted(centres, np.arange(len(frames))), 0, len(centres) - 1)
    is_host = similarity[nearest] >= threshold
    turns, start = [], 0
    for index in range(1, len(frames) + 1):
        if index == len(frames) or is_host[index] != is_host[start]:
            turns.append(Turn(start * FRAME_S, index * FRAME_S, host.name if is_host[start] else OTHER, 1.0))
            start = index
    return Labelling(turns, host.name, len(samples) / SAMPLE_RATE, len(frames) * FRAME_S, "reference")


# --- Composing LibriSpeech recordings ---


def _load(path: Path) -> np.ndarray:
    return as_float(decode(path))


def _phone_line(samples: np.ndarray) -> np.ndarray:
    """300–3400 Hz band, as a caller's voice comes through a phone line."""
    from scipy.signal import butter, sosfilt

    sos = butter(4, [300, 3400], btype="bandpass", fs=SAMPLE_RATE, output="sos")
    return sosfilt(sos, samples).astype(np.float32)


class _Builder:
    """Appends utterances with pauses (or a short overlap) and records who speaks when."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.pieces: list[tuple[int, np.ndarray]] = []
        self.truth: list[Span] = []
        self.voiced: list[tuple[int, np.ndarray]] = []
        self.cursor = 0

    def add(self, samples: np.ndarray, speaker: str, pause_s: float, gain_db: float) -> None:
        start = max(0, self.cursor + int(pause_s * SAMPLE_RATE))
        samples = samples * 10 ** (gain_db / 20)
        self.pieces.append((start, samples))
        self.truth.append(Span(start / SAMPLE_RATE, (start + len(samples)) / SAMPLE_RATE, speaker))
        self.voiced.append((_frames(start / SAMPLE_RATE), voiced_frames(samples, aggressiveness=0)))
        self.cursor = start + len(samples)

    def build(self, name: str, kind: str, host: str) -> Recording:
        total = max(start + len(s) for start, s in self.pieces) + SAMPLE_RATE // 2
        mixed = np.zeros(total, dtype=np.float32)
        voiced = np.zeros(_frames(total / SAMPLE_RATE) + 1, dtype=bool)
        for start, samples in self.pieces:
            mixed[start : start + len(samples)] += samples
        for first, mask in self.voiced:
            voiced[first : first + len(mask)] |= mask[: max(0, len(voiced) - first)]
        mixed += np.random.default_rng(self.rng.randrange(2**32)).normal(0, 3e-4, total).astype(np.float32)
        return Recording(name, kind, host, np.clip(mixed, -1, 1), self.truth, voiced)


def librispeech_cases(root: Path, seed: int, hosts: list[str] | None = None) -> list[Case]:
    """For each host speaker of test-other: enrolment from 3 utterances, and the four kinds of recording from the rest."""
    rng = random.Random(seed)
    speakers_dir = root / "test-other"
    speakers = sorted(p.name for p in speakers_dir.iterdir() if p.is_dir())
    utterances = {s: sorted(p for p in (speakers_dir / s).iterdir() if p.suffix == ".flac") for s in speakers}
    callers_all = sorted((root / "train-clean-100").glob("*.flac"))
    cases = []
    for host in hosts or speakers:
        files = utterances[host][:]
        rng.shuffle(files)
        enrol, rest = files[:3], files[3:]
        guests = [s for s in speakers if s != host]
        guest = rng.choice(guests)
        guest_files = utterances[guest][:]
        rng.shuffle(guest_files)
        callers = rng.sample(callers_all, 5)
        gain = {s: rng.uniform(-6, 6) for s in speakers}
        host_audio = [_load(p) for p in rest]
        recordings = []

        mono = _Builder(rng)
        for samples in host_audio:
            mono.add(samples, host, rng.uniform(0.3, 1.0), gain[host])
        recordings.append(mono.build(f"{host}-monologue", "monologue", host))

        interview = _Builder(rng)
        guest_audio = [_load(p) for p in guest_files[:6]]
        hosts_left, guests_left = list(host_audio), list(guest_audio)
        turn = host
        while hosts_left or guests_left:
            pool = hosts_left if (turn == host and hosts_left) or not guests_left else guests_left
            speaker = host if pool is hosts_left else guest
            for _ in range(rng.choice((1, 1, 2))):
                if pool:
                    pause = (
                        -0.4 if rng.random() < 0.15 else rng.uniform(0.2, 1.5)
                    )  # sometimes a short overlap
                    interview.add(pool.pop(0), speaker, pause, gain[speaker])
            turn = guest if speaker == host else host
        recordings.append(interview.build(f"{host}-interview-{guest}", "interview", host))

        qa = _Builder(rng)
        answers = list(host_audio)
        for caller in callers[:4]:
            caller_audio = _load(caller)[: int(rng.uniform(5, 20) * SAMPLE_RATE)]
            qa.add(_phone_line(caller_audio), f"caller-{caller.stem.split('-')[0]}", rng.uniform(0.3, 1.2), 0)
            for _ in range(2):
                if answers:
                    qa.add(answers.pop(0), host, rng.uniform(0.3, 1.2), gain[host])
        recordings.append(qa.build(f"{host}-live_qa", "live_qa", host))

        no_host = _Builder(rng)
        for samples in [_load(p) for p in guest_files[6:]]:
            no_host.add(samples, guest, rng.uniform(0.3, 1.0), gain[guest])
        no_host.add(_phone_line(_load(callers[4])), f"caller-{callers[4].stem.split('-')[0]}", 0.6, 0)
        recordings.append(no_host.build(f"{host}-no_host-{guest}", "no_host", host))
        cases.append(Case(host, [_load(p) for p in enrol], recordings, f"librispeech seed {seed}"))
    return cases


# --- AMI: a speaker recurring across meetings ---

AMI_PAIRS = (  # (speaker, enrol from, label), both directions where each meeting has enough of the speaker
    ("MEE009", "dev00", "dev01"),
    ("MEE009", "dev01", "dev00"),
    ("MÉO069", "trn03", "trn00"),
    ("MÉO069", "trn00", "trn03"),
    ("FEE087", "trn08", "trn07"),
    ("FEE087", "trn07", "trn08"),
    ("FEE088", "trn08", "trn07"),
)


def read_rttm(path: Path) -> list[Span]:
    spans = []
    for line in path.read_text(encoding="utf-8").splitlines():
        fields = line.split()
        if len(fields) >= 8 and fields[0] == "SPEAKER":
            start, length = float(fields[3]), float(fields[4])
            spans.append(Span(start, start + length, fields[7]))
    return spans


def _solo_audio(samples: np.ndarray, spans: list[Span], speaker: str) -> np.ndarray:
    """The speaker's turns with nobody else speaking over them, joined."""
    mask = np.zeros(len(samples), dtype=bool)
    for span in spans:
        if span.speaker == speaker:
            mask[int(span.start_s * SAMPLE_RATE) : int(span.end_s * SAMPLE_RATE)] = True
    for span in spans:
        if span.speaker != speaker:
            mask[int(span.start_s * SAMPLE_RATE) : int(span.end_s * SAMPLE_RATE)] = False
    return samples[mask]


def ami_cases(root: Path) -> list[Case]:
    cases = []
    for speaker, enrol_from, label in AMI_PAIRS:
        enrol_samples = _load(root / f"{enrol_from}.wav")
        samples = _load(root / f"{label}.wav")
        spans = read_rttm(root / f"{label}.rttm")
        recording = Recording(f"ami-{label}-{speaker}", "ami", speaker, samples, spans, None)
        enrolment = [_solo_audio(enrol_samples, read_rttm(root / f"{enrol_from}.rttm"), speaker)]
        cases.append(Case(speaker, enrolment, [recording], f"ami {speaker} {enrol_from}->{label}"))
    return cases
