"""The faster-whisper engine itself, run in a child process that never imports torch.

Why a child process: in one process that has imported torch (sentence-transformers does) and has run
CTranslate2, the two libraries' native allocators can meet at interpreter exit and abort the process
(`free(): invalid pointer`) after the work is done (see docs/transcription.md). Here the model lives in
its own process: the parent reads the answer over a pipe and ignores how the child exits.

Protocol: one JSON object per line. The parent writes `{"op": "transcribe", "settings": {...},
"audio": path}` or `{"op": "exit"}` on stdin; the child answers each `transcribe` with one line on its
private copy of stdout (fd 1 is pointed at stderr, so library prints cannot corrupt the protocol).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

# Defaults for a 16 GB consumer GPU and for a CPU; docs/transcription.md explains the choice.
CUDA_DEFAULTS = {"model": "large-v3", "compute_type": "float16", "batch_size": 16}
CPU_DEFAULTS = {"model": "small", "compute_type": "int8", "batch_size": 8}


class WhisperEngine:
    """Loads the model on first use and keeps it for every later file with the same settings."""

    def __init__(self) -> None:
        self._key: tuple[Any, ...] | None = None
        self._pipeline: Any = None
        self._resolved: dict[str, Any] = {}

    def transcribe(self, settings: dict[str, Any], audio: str) -> dict[str, Any]:
        try:
            pipeline, resolved = self._load(settings)
        except EngineUnavailable as exc:
            return {"ok": False, "failure_class": "engine_unavailable", "message": str(exc)}
        try:
            from faster_whisper.audio import decode_audio

            samples = decode_audio(audio, sampling_rate=16_000)
        except Exception as exc:  # PyAV raises many types for a broken file
            return {"ok": False, "failure_class": "error", "message": f"cannot decode audio: {exc}"}
        duration = len(samples) / 16_000
        if duration == 0:
            return {"ok": False, "failure_class": "error", "message": "the audio has no samples"}
        segments, info = pipeline.transcribe(
            samples,
            language=settings.get("language") or None,
            task="transcribe",
            batch_size=resolved["batch_size"],
            beam_size=settings.get("beam_size", 5),
            vad_filter=True,  # skip music and silence: the main source of hallucinated text
            # Repetition loops on long audio come from feeding the model its own previous output;
            # batched chunks are independent anyway, and saying so keeps it true if batching is off.
            condition_on_previous_text=False,
            # A chunk that decodes into a loop compresses too well or scores too low: decode it again
            # at a higher temperature rather than keep it.
            compression_ratio_threshold=2.4,
            log_prob_threshold=-1.0,
            no_speech_threshold=0.6,
            temperature=[0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
            without_timestamps=False,  # sentence-level cues, not 30 s VAD chunks, so links land on the words
            max_new_tokens=settings.get("max_new_tokens"),
        )
        cues = [[s.start, s.end, s.text] for s in segments]
        return {
            "ok": True,
            "cues": cues,
            "language": info.language,
            "duration": duration,
            **resolved,
        }

    def _load(self, settings: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        import ctranslate2

        requested = settings.get("device") or "auto"
        cuda_devices = ctranslate2.get_cuda_device_count()
        if requested == "cuda" and cuda_devices == 0:
            raise EngineUnavailable(
                "device 'cuda' was asked for but CTranslate2 sees no CUDA GPU; set the device to 'auto' "
                "or 'cpu', or check the NVIDIA driver and CUDA libraries"
            )
        device = "cuda" if requested == "cuda" or (requested == "auto" and cuda_devices > 0) else "cpu"
        defaults = CUDA_DEFAULTS if device == "cuda" else CPU_DEFAULTS
        resolved = {
            "device": device,
            "model": settings.get("model") or defaults["model"],
            "compute_type": settings.get("compute_type") or defaults["compute_type"],
            "batch_size": settings.get("batch_size") or defaults["batch_size"],
        }
        key = (
            resolved["model"],
            device,
            resolved["compute_type"],
            settings.get("download_root"),
            settings.get("local_files_only"),
            settings.get("cpu_threads"),
        )
        if self._key == key:
            return self._pipeline, self._resolved
        from faster_whisper import BatchedInferencePipeline, WhisperModel

        try:
            model = WhisperModel(
                resolved["model"],
                device=device,
                compute_type=resolved["compute_type"],
                cpu_threads=settings.get("cpu_threads") or 0,
                download_root=settings.get("download_root"),
                local_files_only=bool(settings.get("local_files_only")),
            )
        except Exception as exc:  # hub errors, missing files, unsupported compute type
            raise EngineUnavailable(
                f"cannot load Whisper model {resolved['model']!r} on {device} ({resolved['compute_type']}): "
                f"{type(exc).__name__}: {exc}. Download it once on a machine with network "
                "(it is cached under download_root or the Hugging Face cache), or set the model to a folder "
                "of CTranslate2 files"
            ) from exc
        self._pipeline = BatchedInferencePipeline(model=model)
        self._key = key
        self._resolved = resolved
        return self._pipeline, resolved


class EngineUnavailable(RuntimeError):
    """The model cannot be loaded here (missing files, no GPU, unsupported compute type)."""


def serve(requests, replies) -> None:
    """Answer `transcribe` requests, one JSON line each, until `exit` or end of input."""
    engine = WhisperEngine()
    for line in requests:
        if not line.strip():
            continue
        request = json.loads(line)
        if request.get("op") == "exit":
            break
        try:
            reply = engine.transcribe(request["settings"], request["audio"])
        except Exception as exc:  # a bug or a native error: report it instead of dying silently
            reply = {"ok": False, "failure_class": "error", "message": f"{type(exc).__name__}: {exc}"}
        replies.write(json.dumps(reply) + "\n")
        replies.flush()


def main() -> None:
    protocol_fd = os.dup(1)
    os.dup2(2, 1)  # stray prints from native libraries go to stderr, not into the protocol
    sys.stdout = sys.stderr
    with os.fdopen(protocol_fd, "w", encoding="utf-8") as replies:
        serve(sys.stdin, replies)
    sys.stderr.flush()
    # Skip interpreter teardown: the answer is delivered and native libraries' exit handlers are
    # where the crash described above happens.
    os._exit(0)


if __name__ == "__main__":
    main()
