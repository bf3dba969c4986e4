"""Local speech recognition with faster-whisper: free, GPU-friendly, for the back catalogue.

The model runs in a worker process (see `whisper_worker`) started on the first `transcribe` and kept
for the rest of the run, so the model is loaded once, and nothing touches the GPU until a file needs
it. `isolate=False` runs the same engine in this process instead (for measurements).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from chaffee_assets.ingest.cues import Cue
from chaffee_assets.ingest.outcomes import FailureClass, TranscriptFailure
from chaffee_assets.transcription.engine import LOCAL_WHISPER, Transcription, describe, tidy_cues

log = logging.getLogger(__name__)

# Model names faster-whisper resolves on the Hugging Face hub; anything else is taken as a folder.
KNOWN_MODEL_NAMES = frozenset(
    [
        "tiny",
        "tiny.en",
        "base",
        "base.en",
        "small",
        "small.en",
        "medium",
        "medium.en",
        "large-v1",
        "large-v2",
        "large-v3",
        "large",
        "large-v3-turbo",
        "turbo",
        "distil-small.en",
        "distil-medium.en",
        "distil-large-v2",
        "distil-large-v3",
        "distil-large-v3.5",
    ]
)


@dataclass(frozen=True)
class LocalWhisperSettings:
    """How to run faster-whisper. `None` means the default for the device that is found.

    Defaults: CUDA → large-v3, float16, batch 16; CPU → small, int8, batch 8 (docs/transcription.md).
    """

    model: str | None = None  # a faster-whisper model name, a hub id, or a folder of CTranslate2 files
    device: str = "auto"  # auto | cuda | cpu
    compute_type: str | None = None
    batch_size: int | None = None
    beam_size: int = 5
    language: str | None = "en"  # the channel is English; None detects it from the first 30 s
    download_root: str | None = None
    local_files_only: bool = False
    cpu_threads: int = 0
    max_new_tokens: int | None = None

    def __post_init__(self) -> None:
        if self.device not in ("auto", "cuda", "cpu"):
            raise ValueError(f"device must be 'auto', 'cuda' or 'cpu', not {self.device!r}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError("batch_size must be at least 1")


def model_files_problem(model: str | None) -> str | None:
    """Why `model` cannot be loaded from disk, if it names a folder; None when it looks loadable."""
    if model is None or model in KNOWN_MODEL_NAMES:
        return None
    path = Path(model).expanduser()
    looks_like_path = path.is_absolute() or model.startswith((".", "~")) or path.exists()
    if not looks_like_path:
        return None  # a hub id such as "Systran/faster-whisper-large-v3"
    if not (path / "model.bin").is_file():
        return (
            f"no CTranslate2 Whisper model at {path} (model.bin missing); convert one with "
            "ct2-transformers-converter or set the model to a name such as 'large-v3'"
        )
    return None


class _Worker:
    """A `python -m chaffee_assets.transcription.whisper_worker` child answering over pipes."""

    def __init__(self) -> None:
        env = dict(os.environ)
        # The child must not pick up a sitecustomize or startup hook that imports torch.
        env.pop("PYTHONSTARTUP", None)
        self._process = subprocess.Popen(
            [sys.executable, "-m", "chaffee_assets.transcription.whisper_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            env=env,
        )

    @property
    def alive(self) -> bool:
        return self._process.poll() is None

    def request(self, payload: dict[str, Any]) -> dict[str, Any]:
        assert self._process.stdin and self._process.stdout
        try:
            self._process.stdin.write(json.dumps(payload) + "\n")
            self._process.stdin.flush()
            line = self._process.stdout.readline()
        except (BrokenPipeError, OSError):
            line = ""
        if not line:
            code = self._process.wait(timeout=30)
            raise _WorkerDied(f"the Whisper worker process ended (exit status {code}) before answering")
        return json.loads(line)

    def close(self) -> None:
        process = self._process
        try:
            if process.poll() is None and process.stdin:
                process.stdin.write(json.dumps({"op": "exit"}) + "\n")
                process.stdin.close()
            process.wait(timeout=30)
        except (BrokenPipeError, OSError, subprocess.TimeoutExpired):
            process.kill()
            process.wait()
        # The exit status is deliberately not an error: every answer was already read.
        if process.returncode not in (0, None):
            log.debug("Whisper worker exited with status %s after its work", process.returncode)


class _WorkerDied(RuntimeError):
    pass


class LocalWhisperTranscriber:
    """`Transcriber` on faster-whisper's batched pipeline with voice activity detection."""

    engine = LOCAL_WHISPER

    def __init__(self, settings: LocalWhisperSettings | None = None, *, isolate: bool = True) -> None:
        self.settings = settings or LocalWhisperSettings()
        self.isolate = isolate
        self._worker: _Worker | None = None
        self._in_process: Any = None
        self._lock = threading.Lock()
        self.last_run: dict[str, Any] = {}  # device, model, compute_type, batch_size of the last call

    def transcribe(self, audio: Path, *, video_id: str | None = None) -> Transcription:
        what = describe(audio, video_id)
        if not audio.is_file():
            raise TranscriptFailure(FailureClass.ERROR, f"audio file for {what} not found: {audio}")
        problem = model_files_problem(self.settings.model)
        if problem:
            raise TranscriptFailure(FailureClass.ENGINE_UNAVAILABLE, f"cannot transcribe {what}: {problem}")
        request = {"op": "transcribe", "settings": asdict(self.settings), "audio": str(audio.resolve())}
        with self._lock:
            reply = self._run(request, what)
        if not reply.get("ok"):
            failure = FailureClass(reply.get("failure_class", "error"))
            raise TranscriptFailure(
                failure, f"local Whisper could not transcribe {what}: {reply.get('message')}"
            )
        self.last_run = {k: reply[k] for k in ("device", "model", "compute_type", "batch_size")}
        duration = float(reply["duration"])
        cues = tidy_cues((Cue(float(s), float(e), str(t)) for s, e, t in reply["cues"]), duration)
        return Transcription(
            cues=cues,
            engine=LOCAL_WHISPER,
            model=_model_label(reply["model"]),
            language=reply.get("language"),
            audio_seconds=round(duration, 3),
            cost_usd=0.0,
        )

    def _run(self, request: dict[str, Any], what: str) -> dict[str, Any]:
        if not self.isolate:
            from chaffee_assets.transcription.whisper_worker import WhisperEngine

            if self._in_process is None:
                self._in_process = WhisperEngine()
            return self._in_process.transcribe(request["settings"], request["audio"])
        if self._worker is None or not self._worker.alive:
            self._worker = _Worker()
        try:
            return self._worker.request(request)
        except _WorkerDied as exc:
            self._worker = None
            raise TranscriptFailure(
                FailureClass.ERROR,
                f"local Whisper crashed while transcribing {what}: {exc}; the worker's stderr above says why "
                "(out of GPU memory is the usual cause: lower batch_size or use compute_type int8_float16)",
            ) from exc

    def close(self) -> None:
        """Stop the worker process (the model is freed with it)."""
        with self._lock:
            if self._worker is not None:
                self._worker.close()
                self._worker = None
            self._in_process = None

    def __enter__(self) -> LocalWhisperTranscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _model_label(model: str) -> str:
    """What the transcript's provenance names: the model name, or a model folder's name."""
    return model if model in KNOWN_MODEL_NAMES else Path(model).name or model
