"""Voice encoders behind one interface: fixed-length speaker vectors for short windows of speech.

The default is Resemblyzer's speaker encoder (a 3-layer LSTM over 40-band mel power frames, trained on
VoxCeleb and LibriSpeech; its weights ship inside the `resemblyzer` wheel, so it runs with no network).
Its network is run here directly from those weights, with the mel frames computed in numpy for the
whole recording once: windows are then slices of one spectrogram and go through the LSTM in batches,
which is what makes labelling hours of audio cheap (docs/speakers.md).

CAM++ (`CHAFFEE_SPEAKER_MODEL=campplus`, `speakers/campplus.py`) is the stronger model that also
needs no network: its weights ship in a wheel too. A model from a model hub
(`CHAFFEE_SPEAKER_MODEL=speechbrain/spkrec-ecapa-voxceleb` or a `pyannote/...` embedding model) is
loaded only when named, and only where that package and the model's files are present.
"""

from __future__ import annotations

import importlib.util
import threading
from functools import cache
from pathlib import Path
from typing import Protocol

import numpy as np

SAMPLE_RATE = 16_000
FRAME_S = 0.01  # one mel frame every 10 ms
DEFAULT_SPEAKER_MODEL = "resemblyzer"
CAMPPLUS_MODEL = "campplus"  # speakers/campplus.py
_N_FFT = 400  # 25 ms
_HOP = 160  # 10 ms
_N_MELS = 40


class SpeakerModelUnavailable(RuntimeError):
    """The named voice model cannot be loaded here (package or weights missing)."""


class VoiceEncoder(Protocol):
    """Turns windows of a recording into unit-length speaker vectors."""

    name: str
    window_frames: int  # the window length in 10 ms frames the model is meant to see

    def frames(self, samples: np.ndarray) -> np.ndarray:
        """Per-10-ms features for a whole recording (float32 samples in [-1, 1] at 16 kHz)."""
        ...

    def embed(self, frames: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """One unit vector per window `frames[start : start + window_frames]`."""
        ...


@cache
def _mel_filters() -> np.ndarray:
    """librosa's default (Slaney) mel filterbank for 16 kHz, n_fft 400, 40 bands: what the encoder was trained on."""
    fft_freqs = np.linspace(0, SAMPLE_RATE / 2, _N_FFT // 2 + 1)

    def hz_to_mel(hz: np.ndarray) -> np.ndarray:
        hz = np.asarray(hz, dtype=np.float64)
        mel = hz / (200.0 / 3)
        log_part = hz >= 1000.0
        return np.where(log_part, 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (np.log(6.4) / 27.0), mel)

    def mel_to_hz(mel: np.ndarray) -> np.ndarray:
        hz = mel * (200.0 / 3)
        log_part = mel >= 15.0
        return np.where(log_part, 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0)), hz)

    mel_points = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(SAMPLE_RATE / 2), _N_MELS + 2))
    spacing = np.diff(mel_points)
    ramps = mel_points[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / spacing[:-1, None]
    upper = ramps[2:] / spacing[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_points[2:] - mel_points[:-2]))[:, None]  # Slaney area normalisation
    return weights.astype(np.float32)


# Frames per batch of spectra. Framing a whole recording at once builds arrays of gigabytes for an
# hour (every frame's samples, then its complex spectrum in float64), and moving them through memory
# cost a quarter of the labeller's time; batches that stay in the cache cost a tenth of that
# (bench/bench_speaker_frontend.py). Each batch reads its own stretch of the recording, so no copy of
# the whole recording is made either.
SPECTRUM_BATCH_FRAMES = 4096


def framed(samples: np.ndarray, length: int, shift: int) -> np.ndarray:
    """(frames, length) views of `samples`, one every `shift` samples, wholly inside the signal."""
    count = 1 + (len(samples) - length) // shift
    if count <= 0:
        return np.zeros((0, length), dtype=samples.dtype)
    return np.lib.stride_tricks.as_strided(
        samples,
        shape=(count, length),
        strides=(samples.strides[0] * shift, samples.strides[0]),
        writeable=False,
    )


def frame_features(
    samples: np.ndarray, length: int, shift: int, features: int, compute, *, centred: bool = False
) -> np.ndarray:
    """(frames, features) float32: `compute` (a batch of float32 frames to their features) over the
    frames of `samples`, one every `shift` samples, in batches of SPECTRUM_BATCH_FRAMES.

    `centred`: frame i is centred on sample i * shift, the signal zero-padded by half a frame at both
    ends (librosa's frames); otherwise frames lie wholly inside the signal (Kaldi's)."""
    pad = length // 2 if centred else 0
    count = max(0, 1 + (len(samples) + 2 * pad - length) // shift)
    out = np.empty((count, features), dtype=np.float32)
    for first in range(0, count, SPECTRUM_BATCH_FRAMES):
        last = min(count, first + SPECTRUM_BATCH_FRAMES)
        low, high = first * shift - pad, (last - 1) * shift + length - pad  # this batch's samples
        piece = samples[max(low, 0) : min(high, len(samples))].astype(np.float32, copy=False)
        if low < 0 or high > len(samples):
            piece = np.pad(piece, (max(0, -low), max(0, high - len(samples))))
        out[first:last] = compute(framed(piece, length, shift))
    return out


def power_spectrum(frames: np.ndarray, n_fft: int) -> np.ndarray:
    """|FFT|² of each (already windowed) frame, in float32."""
    import scipy.fft

    spectrum = scipy.fft.rfft(frames, n=n_fft, axis=1, workers=1)
    return spectrum.real**2 + spectrum.imag**2


@cache
def _hann_window() -> np.ndarray:
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(_N_FFT) / _N_FFT)).astype(np.float32)


def mel_power_frames(samples: np.ndarray) -> np.ndarray:
    """(frames, 40) mel power spectrogram, centred frames every 10 ms, as librosa computes it."""
    window, bands = _hann_window(), _mel_filters().T

    def mel_power(frames: np.ndarray) -> np.ndarray:
        return power_spectrum(frames * window, _N_FFT) @ bands

    return frame_features(samples, _N_FFT, _HOP, _N_MELS, mel_power, centred=True)


def windows_at(frames: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:
    """(windows, length, features): the frames of each window, the last frame repeated past the end."""
    index = np.asarray(starts)[:, None] + np.arange(length)[None, :]
    return frames[np.minimum(index, len(frames) - 1)]


def embed_in_batches(
    frames: np.ndarray,
    starts: np.ndarray,
    length: int,
    forward,
    *,
    batch_size: int,
    device: str,
    lock: threading.Lock,
    prepare=None,
) -> np.ndarray:
    """Unit-length vectors of `forward` (a torch network from batches to vectors) over the windows
    `frames[start : start + length]`, each batch's windows cut (and `prepare`d) only when it runs, so
    an hour's windows are never in memory at once.

    One thread: a second one mostly spins waiting on these small matrix products, costing CPU time
    for little speed (docs/speakers.md); the setting is the process's, so it is restored.
    """
    import torch

    out: list[np.ndarray] = []
    threads = torch.get_num_threads()
    with lock, torch.inference_mode():
        torch.set_num_threads(1)
        try:
            for first in range(0, len(starts), batch_size):
                windows = windows_at(frames, starts[first : first + batch_size], length)
                if prepare is not None:
                    windows = prepare(windows)
                batch = torch.from_numpy(np.ascontiguousarray(windows))
                vectors = forward(batch.to(device))
                vectors = vectors / vectors.norm(dim=1, keepdim=True).clamp_min(1e-8)
                out.append(vectors.cpu().numpy())
        finally:
            torch.set_num_threads(threads)
    return np.concatenate(out).astype(np.float32)


def resemblyzer_weights() -> Path:
    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or spec.origin is None:
        raise SpeakerModelUnavailable(
            "the default voice model needs the resemblyzer package: run scripts/install.sh"
        )
    return Path(spec.origin).parent / "pretrained.pt"


class ResemblyzerEncoder:
    """Resemblyzer's speaker encoder run from the wheel's weights (1.6 s windows, 256-d vectors)."""

    name = DEFAULT_SPEAKER_MODEL
    window_frames = 160

    def __init__(self, device: str = "cpu", batch_size: int = 64) -> None:
        import torch

        self._torch = torch
        self.device = device
        self.batch_size = batch_size
        state = torch.load(resemblyzer_weights(), map_location=device, weights_only=True)["model_state"]
        self._lstm = torch.nn.LSTM(_N_MELS, 256, num_layers=3, batch_first=True).to(device)
        self._linear = torch.nn.Linear(256, 256).to(device)
        self._lstm.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("lstm.")})
        self._linear.load_state_dict({k[7:]: v for k, v in state.items() if k.startswith("linear.")})
        self._lstm.eval()
        self._linear.eval()
        self._lock = threading.Lock()

    def frames(self, samples: np.ndarray) -> np.ndarray:
        return mel_power_frames(samples)

    def embed(self, frames: np.ndarray, starts: np.ndarray) -> np.ndarray:
        if len(starts) == 0:
            return np.zeros((0, 256), dtype=np.float32)
        return embed_in_batches(
            frames,
            starts,
            self.window_frames,
            self._forward,
            batch_size=self.batch_size,
            device=self.device,
            lock=self._lock,
        )

    def _forward(self, batch):
        _, (hidden, _) = self._lstm(batch)
        return self._torch.relu(self._linear(hidden[-1]))


class HubEncoder:
    """A stronger embedding model from a hub (SpeechBrain ECAPA or pyannote), when its package and files are here."""

    window_frames = 150

    def __init__(self, name: str, device: str = "cpu") -> None:
        self.name = name
        self.device = device
        try:
            if name.startswith("pyannote/"):
                from pyannote.audio import Inference, Model

                self._model = Inference(Model.from_pretrained(name), window="whole", device=device)
                self._kind = "pyannote"
            else:
                from speechbrain.inference.speaker import EncoderClassifier

                self._model = EncoderClassifier.from_hparams(source=name, run_opts={"device": device})
                self._kind = "speechbrain"
        except ImportError as exc:
            raise SpeakerModelUnavailable(
                f"voice model {name} needs the {'pyannote.audio' if name.startswith('pyannote/') else 'speechbrain'} "
                "package: pip install it, or unset CHAFFEE_SPEAKER_MODEL for the built-in model"
            ) from exc
        except Exception as exc:  # a hub download refused, files missing: say which model and why
            raise SpeakerModelUnavailable(f"cannot load voice model {name}: {exc}") from exc

    def frames(self, samples: np.ndarray) -> np.ndarray:
        # This model reads raw samples: keep them, 160 to a 10 ms "frame", so windows slice alike.
        usable = len(samples) - len(samples) % _HOP
        return samples[:usable].reshape(-1, _HOP).astype(np.float32)

    def embed(self, frames: np.ndarray, starts: np.ndarray) -> np.ndarray:
        import torch

        vectors = []
        for start in starts:
            wave = frames[start : start + self.window_frames].reshape(1, -1)
            with torch.inference_mode():
                if self._kind == "speechbrain":
                    vector = self._model.encode_batch(torch.from_numpy(wave)).reshape(-1).cpu().numpy()
                else:
                    vector = np.asarray(
                        self._model({"waveform": torch.from_numpy(wave), "sample_rate": SAMPLE_RATE})
                    ).reshape(-1)
            vectors.append(vector / max(float(np.linalg.norm(vector)), 1e-8))
        return np.asarray(vectors, dtype=np.float32)


_ENCODERS: dict[tuple[str, str], VoiceEncoder] = {}
_ENCODERS_LOCK = threading.Lock()


def load_encoder(name: str | None = None, device: str | None = None) -> VoiceEncoder:
    """The named voice model (default Resemblyzer's), loaded once per process and device."""
    name = name or DEFAULT_SPEAKER_MODEL
    device = device or "cpu"
    with _ENCODERS_LOCK:
        key = (name, device)
        if key not in _ENCODERS:
            if name == DEFAULT_SPEAKER_MODEL:
                _ENCODERS[key] = ResemblyzerEncoder(device)
            elif name == CAMPPLUS_MODEL:
                from chaffee_assets.speakers.campplus import CAMPPlusEncoder

                _ENCODERS[key] = CAMPPlusEncoder(device)
            else:
                _ENCODERS[key] = HubEncoder(name, device)
        return _ENCODERS[key]
