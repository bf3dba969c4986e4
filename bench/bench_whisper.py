"""Measure local Whisper throughput: audio seconds per wall second, with model, device and batch size.

    python bench/bench_whisper.py AUDIO_FILE [--model large-v3] [--device auto] [--compute-type float16]
                                  [--batch-size 16] [--repeat 2] [--in-process]

The first run includes loading the model; later runs show steady-state speed. Prints one line per run
and a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from chaffee_assets.transcription.audio import duration_seconds
from chaffee_assets.transcription.local_whisper import LocalWhisperSettings, LocalWhisperTranscriber


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("audio", type=Path, help="audio file to transcribe (longer is more representative)")
    parser.add_argument("--model", help="model name or CTranslate2 folder (default: per device)")
    parser.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"), help="where to run")
    parser.add_argument("--compute-type", help="CTranslate2 compute type (default: per device)")
    parser.add_argument("--batch-size", type=int, help="batched pipeline batch size (default: per device)")
    parser.add_argument("--repeat", type=int, default=2, help="number of timed runs (default 2)")
    parser.add_argument("--in-process", action="store_true", help="run the engine in this process, no worker")
    args = parser.parse_args()

    settings = LocalWhisperSettings(
        model=args.model, device=args.device, compute_type=args.compute_type, batch_size=args.batch_size
    )
    seconds = duration_seconds(args.audio)
    runs = []
    with LocalWhisperTranscriber(settings, isolate=not args.in_process) as engine:
        for index in range(args.repeat):
            started = time.perf_counter()
            result = engine.transcribe(args.audio)
            wall = time.perf_counter() - started
            run = {"run": index + 1, "wall_s": round(wall, 2), "audio_s_per_wall_s": round(seconds / wall, 1)}
            runs.append(run)
            print(
                f"run {index + 1}: {seconds:.0f} s of audio in {wall:.1f} s = {seconds / wall:.1f}x, "
                f"{len(result.cues)} segments",
                flush=True,
            )
        summary = {"audio": str(args.audio), "audio_s": round(seconds, 1), **engine.last_run, "runs": runs}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
