"""Audio for speech recognition: decode, measure, re-encode compactly and split at silences, with PyAV.

PyAV comes with faster-whisper (it is how faster-whisper decodes), so no system ffmpeg is needed.
Everything written goes under a temporary folder that is removed whatever happens.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

SAMPLE_RATE = 16_000  # what Whisper models hear; decoding at this rate loses nothing they use
UPLOAD_BITRATE = 32_000  # mono MP3 at 16 kHz: 240 kB per minute, speech stays clear
UPLOAD_FORMAT = "mp3"  # accepted by every transcription endpoint; Opus is smaller but less widely taken


class UndecodableAudio(ValueError):
    """The file is not audio PyAV can decode (missing, truncated, not a media file, no audio stream)."""


@dataclass(frozen=True, slots=True)
class AudioChunk:
    """One piece of a longer audio file, encoded for upload; `offset` is where it starts in the original."""

    path: Path
    offset: float
    duration: float


@contextlib.contextmanager
def scratch_dir(prefix: str = "chaffee-asr-") -> Iterator[Path]:
    """A temporary folder removed on exit, also when the body raises."""
    with tempfile.TemporaryDirectory(prefix=prefix) as folder:
        yield Path(folder)


def decode(path: Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The file's first audio stream as mono 16-bit samples at `sample_rate`."""
    pieces: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise UndecodableAudio(f"{path} has no audio stream")
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="s16", layout="mono", rate=sample_rate)
            for frame in container.decode(stream):
                pieces.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(frame))
            pieces.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(None))
    except UndecodableAudio:
        raise
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise UndecodableAudio(f"cannot decode audio {path}: {exc}") from exc
    if not pieces:
        raise UndecodableAudio(f"{path} decodes to no audio samples")
    return np.concatenate(pieces).astype(np.int16, copy=False)


def duration_seconds(path: Path) -> float:
    """Exact duration by decoding (container headers are often wrong for webm and VBR mp3)."""
    return len(decode(path)) / SAMPLE_RATE


def encode_mp3(
    samples: np.ndarray, dest: Path, *, sample_rate: int = SAMPLE_RATE, bitrate: int = UPLOAD_BITRATE
) -> Path:
    """Write mono 16-bit `samples` as a constant-bitrate MP3 (size ≈ seconds × bitrate / 8)."""
    with av.open(str(dest), "w", format=UPLOAD_FORMAT) as out:
        stream = out.add_stream("libmp3lame", rate=sample_rate, layout="mono")
        stream.bit_rate = bitrate
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(samples, dtype=np.int16).reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate = sample_rate
        frame.pts = 0
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return dest


def frame_energy(samples: np.ndarray, sample_rate: int = SAMPLE_RATE, frame_s: float = 0.1) -> np.ndarray:
    """RMS loudness of consecutive `frame_s` frames (the last, partial frame included)."""
    size = max(1, int(sample_rate * frame_s))
    padded = np.zeros(-(-len(samples) // size) * size, dtype=np.float64)
    padded[: len(samples)] = samples
    return np.sqrt(np.mean(padded.reshape(-1, size) ** 2, axis=1))


def plan_cuts(
    samples: np.ndarray,
    max_seconds: float,
    *,
    sample_rate: int = SAMPLE_RATE,
    search_fraction: float = 0.25,
    frame_s: float = 0.1,
) -> list[tuple[int, int]]:
    """Sample ranges of at most `max_seconds` each, cut at the quietest frame near each limit.

    Each cut is searched for in the last `search_fraction` of the allowed length, so a chunk is never
    much shorter than the limit, and cutting in a pause keeps words whole on both sides.
    """
    if max_seconds <= 0:
        raise ValueError("max_seconds must be positive")
    total = len(samples)
    limit = int(max_seconds * sample_rate)
    frame = max(1, int(sample_rate * frame_s))
    energy = frame_energy(samples, sample_rate, frame_s)
    ranges: list[tuple[int, int]] = []
    start = 0
    while total - start > limit:
        lo = (start + int(limit * (1 - search_fraction))) // frame
        hi = (start + limit) // frame  # the frame starting here would cross the limit
        if hi <= lo:
            cut = start + limit
        else:
            quietest = lo + int(np.argmin(energy[lo:hi]))
            # Cut in the middle of the quietest frame, never past the limit.
            cut = min(quietest * frame + frame // 2, start + limit)
        cut = max(cut, start + 1)
        ranges.append((start, cut))
        start = cut
    ranges.append((start, total))
    return ranges


def split_for_upload(
    path: Path,
    workdir: Path,
    *,
    max_bytes: int,
    bitrate: int = UPLOAD_BITRATE,
    samples: np.ndarray | None = None,
) -> list[AudioChunk]:
    """Re-encode `path` as compact MP3 pieces under `max_bytes` each, split at silences.

    The first plan assumes the constant bitrate with a 10 % margin for container overhead; a piece that
    still comes out too large makes the plan shorter and the encoding run again.
    """
    if samples is None:
        samples = decode(path)
    seconds_per_byte = 8 / bitrate
    max_seconds = max_bytes * seconds_per_byte * 0.9
    for _ in range(8):
        chunks = []
        for index, (begin, end) in enumerate(plan_cuts(samples, max_seconds)):
            dest = encode_mp3(
                samples[begin:end], workdir / f"part{index:03d}.{UPLOAD_FORMAT}", bitrate=bitrate
            )
            chunks.append(AudioChunk(dest, begin / SAMPLE_RATE, (end - begin) / SAMPLE_RATE))
        largest = max(chunk.path.stat().st_size for chunk in chunks)
        if largest < max_bytes:
            return chunks
        for chunk in chunks:
            chunk.path.unlink(missing_ok=True)
        max_seconds *= 0.8 * max_bytes / largest
    raise ValueError(f"could not split {path} into pieces under {max_bytes} bytes at {bitrate} bit/s")
