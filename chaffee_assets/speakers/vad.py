"""Voice activity: which 10 ms frames of a recording hold speech (WebRTC's detector, which needs no weights)."""

from __future__ import annotations

import numpy as np

from chaffee_assets.speakers.encoder import SAMPLE_RATE

_VAD_FRAME = 480  # 30 ms at 16 kHz, one of the three lengths WebRTC's detector accepts
_PER_VAD_FRAME = 3  # 10 ms frames in one detector frame
_FRAMES_PER_PIECE = 2000  # detector frames converted to PCM at a time (one minute)


def voiced_frames(samples: np.ndarray, aggressiveness: int = 2, bridge_s: float = 0.2) -> np.ndarray:
    """A boolean per 10 ms frame: speech or not.

    Gaps shorter than `bridge_s` inside speech are bridged and isolated blips shorter than that
    dropped: the detector flickers inside words, and a speaker is judged over runs of speech.
    """
    import webrtcvad

    detector = webrtcvad.Vad(aggressiveness)
    count = len(samples) // _VAD_FRAME
    flags = np.zeros(count, dtype=bool)
    step = _VAD_FRAME * 2
    # The detector reads 16-bit PCM; converted a minute at a time, never the whole recording at once.
    for first in range(0, count, _FRAMES_PER_PIECE):
        last = min(count, first + _FRAMES_PER_PIECE)
        piece = samples[first * _VAD_FRAME : last * _VAD_FRAME]
        raw = (np.clip(piece, -1.0, 1.0) * 32767).astype(np.int16).tobytes()
        for index in range(last - first):
            flags[first + index] = detector.is_speech(raw[index * step : (index + 1) * step], SAMPLE_RATE)
    frames = np.repeat(flags, _PER_VAD_FRAME)
    total = int(np.ceil(len(samples) / (SAMPLE_RATE * 0.01)))
    frames = np.pad(frames, (0, max(0, total - len(frames))))[:total]
    width = max(1, int(round(bridge_s / 0.01)))
    return _drop_short(~_drop_short(~frames, width), width)


def _drop_short(mask: np.ndarray, width: int) -> np.ndarray:
    """`mask` with runs of True shorter than `width` frames set to False."""
    out = mask.copy()
    for start, end in runs(mask):
        if end - start < width:
            out[start:end] = False
    return out


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) index pairs of the runs of True in `mask`."""
    padded = np.concatenate(([False], mask.astype(bool), [False]))
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]
