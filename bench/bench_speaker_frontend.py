"""The voice models' front end on an hour of real speech: spectra in batches against the whole
recording framed at once, measured in the same run.

    PYTHONPATH=$PWD .venv/bin/python bench/bench_speaker_frontend.py [--shared ../shared] [--minutes 60]

An hour is LibriSpeech's test-other utterances from ../shared repeated. Framing a whole recording at
once (each 10 ms frame's samples, then its complex spectrum in float64, then the power) builds arrays
of gigabytes; the batches of SPECTRUM_BATCH_FRAMES stay in the cache. Prints CPU seconds of each way
for Resemblyzer's mel frames and CAM++'s Kaldi filterbank, the ratio, and that both give the same
frames.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from chaffee_assets.speakers import campplus, encoder
from chaffee_assets.transcription.audio import decode


def whole_recording_mel(samples: np.ndarray) -> np.ndarray:
    """The front end before batching: numpy's FFT over every frame of the recording at once."""
    padded = np.pad(samples.astype(np.float32), encoder._N_FFT // 2)
    frames = encoder.framed(padded, encoder._N_FFT, encoder._HOP)
    power = np.abs(np.fft.rfft(frames * encoder._hann_window(), axis=1)) ** 2
    return (power.astype(np.float32) @ encoder._mel_filters().T).astype(np.float32)


def whole_recording_fbank(samples: np.ndarray) -> np.ndarray:
    scaled = samples.astype(np.float32) * 32768.0
    frames = encoder.framed(scaled, campplus._FRAME, campplus._SHIFT)
    frames = frames - frames.mean(axis=1, keepdims=True)
    emphasised = np.empty_like(frames)
    emphasised[:, 1:] = frames[:, 1:] - 0.97 * frames[:, :-1]
    emphasised[:, 0] = frames[:, 0] * (1 - 0.97)
    power = np.abs(np.fft.rfft(emphasised * campplus._povey_window(), n=campplus._N_FFT, axis=1)) ** 2
    energies = power.astype(np.float32) @ campplus._mel_banks().T
    return np.log(np.maximum(energies, np.finfo(np.float32).eps)).astype(np.float32)


def cpu_seconds(function, samples: np.ndarray) -> tuple[float, np.ndarray]:
    started = time.process_time()
    out = function(samples)
    return time.process_time() - started, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared")
    parser.add_argument("--minutes", type=float, default=60.0)
    args = parser.parse_args()
    folder = args.shared / "realdata" / "speakers" / "librispeech" / "test-other"
    speech = np.concatenate([decode(path) for path in sorted(folder.glob("*/*.flac"))])
    repeats = int(np.ceil(args.minutes * 60 * encoder.SAMPLE_RATE / len(speech)))
    samples = (np.tile(speech, repeats)[: int(args.minutes * 60 * encoder.SAMPLE_RATE)] / 32768.0).astype(
        np.float32
    )
    print(
        f"{len(samples) / encoder.SAMPLE_RATE / 60:.0f} minutes of speech, batches of {encoder.SPECTRUM_BATCH_FRAMES} frames\n"
    )
    print("| front end | whole recording, CPU s | in batches, CPU s | ratio | largest difference |")
    print("|---|---|---|---|---|")
    for name, whole, batched in (
        ("Resemblyzer mel power (40 bands)", whole_recording_mel, encoder.mel_power_frames),
        ("CAM++ Kaldi log filterbank (80)", whole_recording_fbank, campplus.kaldi_fbank),
    ):
        before, expected = cpu_seconds(whole, samples)
        after, got = cpu_seconds(batched, samples)
        difference = float(np.abs(expected - got).max() / max(np.abs(expected).max(), 1e-12))
        print(
            f"| {name} | {before:.2f} | {after:.2f} | {before / after:.1f} x | {difference:.1e} of the largest value |"
        )


if __name__ == "__main__":
    main()
