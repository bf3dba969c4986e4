"""Recordings for the sample library, synthesised offline, so the demo shows who speaks on a clone
with no real audio: every cue of a talk spoken at its own time by espeak-ng, the host in one voice
(cues tagged `<v Dr Anthony Chaffee>`, and untagged ones) and anyone else in another.

The talks' captions are the script; the voices are the only thing that tells the speakers apart, so
what the demo labels is what the voice model heard. Measurement stays on real speech
(`bench/eval_speakers.py`); these recordings only make the feature visible.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HOST_NAME = "Dr Anthony Chaffee"
HOST_VOICE = "en-us+m3"
GUEST_VOICE = "en-us+f4"
SAMPLE_RATE = 22_050  # espeak-ng's own rate
_WORDS_PER_MINUTE = 175
_FASTEST_WPM = 420
# What the host says to be enrolled from: words of his own, none of them in the talks.
ENROLMENT_TEXT = (
    "Hello everyone, and welcome back to the channel. Today I want to talk about what the evidence "
    "actually shows, where the studies come from, and why so many people feel better when they change "
    "what they eat. As always, talk to your own doctor before you change your medication, and send me "
    "your questions for the next live session."
)
_VOICE_TAG = re.compile(r"^(\d{2}:\d{2}:\d{2}\.\d{3})\s+-->[^\n]*\n<v ([^>]+)>", re.MULTILINE)


class SynthesiserMissing(RuntimeError):
    """espeak-ng (or ffmpeg, which writes the recordings) is not installed."""


@dataclass(frozen=True)
class Turn:
    start_s: float
    end_s: float
    speaker: str
    text: str


def synthesiser_available() -> bool:
    return shutil.which("espeak-ng") is not None and shutil.which("ffmpeg") is not None


def speak(text: str, voice: str, words_per_minute: int = _WORDS_PER_MINUTE) -> np.ndarray:
    """`text` spoken by espeak-ng in `voice`: int16 samples at SAMPLE_RATE."""
    if shutil.which("espeak-ng") is None:
        raise SynthesiserMissing("espeak-ng is not installed (apt-get install espeak-ng)")
    wav = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(words_per_minute), "--stdout", text],
        capture_output=True,
        check=True,
        timeout=120,
    ).stdout
    with wave.open(io.BytesIO(wav)) as reader:
        return np.frombuffer(reader.readframes(reader.getnframes()), dtype=np.int16)


def _clock(stamp: str) -> float:
    hours, minutes, seconds = stamp.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def turns_of(caption_file: Path) -> list[Turn]:
    """The talk's cues joined into turns of one speaker, read with the product's caption parser; a
    WebVTT voice tag names the speaker of its cue, and an untagged cue is the host's."""
    from chaffee_assets.ingest.captions import parse_caption_file

    raw = caption_file.read_text(encoding="utf-8")
    voice_at = {round(_clock(stamp), 2): name.strip() for stamp, name in _VOICE_TAG.findall(raw)}
    turns: list[Turn] = []
    for cue in parse_caption_file(caption_file):
        speaker = voice_at.get(round(cue.start, 2), HOST_NAME)
        if turns and turns[-1].speaker == speaker:
            last = turns[-1]
            turns[-1] = Turn(last.start_s, cue.end, speaker, f"{last.text} {cue.text}")
        else:
            turns.append(Turn(cue.start, cue.end, speaker, cue.text))
    return turns


def synthesise_talk(caption_file: Path) -> np.ndarray:
    """The whole talk as one recording: each turn starts at its first cue's second, in its speaker's
    voice, spoken faster where it would otherwise run into the next turn."""
    turns = turns_of(caption_file)
    total = int((turns[-1].end_s + 1.0) * SAMPLE_RATE) if turns else 0
    track = np.zeros(total, dtype=np.int16)
    for index, turn in enumerate(turns):
        voice = HOST_VOICE if turn.speaker == HOST_NAME else GUEST_VOICE
        start = int(turn.start_s * SAMPLE_RATE)
        until = int(turns[index + 1].start_s * SAMPLE_RATE) if index + 1 < len(turns) else total
        room = max(until - start - int(0.2 * SAMPLE_RATE), SAMPLE_RATE)
        spoken = speak(turn.text, voice)
        if len(spoken) > room:
            faster = min(_FASTEST_WPM, int(_WORDS_PER_MINUTE * len(spoken) / room) + 1)
            spoken = speak(turn.text, voice, faster)
        spoken = spoken[: max(0, min(room, total - start))]
        track[start : start + len(spoken)] = spoken
    return track


def write_opus(samples: np.ndarray, path: Path) -> None:
    """Mono Opus at 24 kbit/s: a five-minute talk in under a megabyte."""
    if shutil.which("ffmpeg") is None:
        raise SynthesiserMissing("ffmpeg is not installed (apt-get install ffmpeg)")
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-f", "s16le", "-ar", str(SAMPLE_RATE), "-ac", "1", "-i", "-",
         "-c:a", "libopus", "-b:a", "24k", str(path)],
        input=samples.tobytes(),
        check=True,
        timeout=300,
    )  # fmt: skip


def voiced_library(sample_library: Path, destination: Path) -> list[str]:
    """A copy of the sample library in `destination` with a synthesised `<id>.opus` beside each talk's
    captions (made once; kept while the captions are unchanged). Returns the ids given a recording."""
    destination.mkdir(parents=True, exist_ok=True)
    for source in sample_library.iterdir():
        if source.is_file():
            target = destination / source.name
            if not target.exists() or target.stat().st_mtime < source.stat().st_mtime:
                shutil.copy2(source, target)
    voiced = []
    for captions in sorted([*destination.glob("*.en.vtt"), *destination.glob("*.en.srt")]):
        video_id = captions.name.split(".")[0]
        recording = destination / f"{video_id}.opus"
        if not recording.exists() or recording.stat().st_mtime < captions.stat().st_mtime:
            write_opus(synthesise_talk(captions), recording)
        voiced.append(video_id)
    return voiced


def host_enrolment() -> np.ndarray:
    """The host's voice saying words of his own, as float samples at 16 kHz for enrolment."""
    samples = speak(ENROLMENT_TEXT, HOST_VOICE).astype(np.float32) / 32768.0
    positions = np.arange(0, len(samples), SAMPLE_RATE / 16_000)
    return np.interp(positions, np.arange(len(samples)), samples).astype(np.float32)
