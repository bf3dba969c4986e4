"""Benchmark: segments embedded per CPU-second by the default model, per embedding backend.

    python bench/bench_embed.py [--segments 1024] [--threads N] [--quick]

Inputs are real dev-library segments cut as the product cuts them (60 s windows, no title). The
baseline, measured in the same run, is plain sentence-transformers in fp32 (`backend=torch`, what
a user gets from `SentenceTransformer(...).encode`). For every other backend: its rate, the ratio
to the baseline, and how far its vectors are from the baseline's (cosine; 1.0 is identical).
Retrieval parity of a backend is measured separately, on every evaluation condition
(`bench/retrieval_lab.py`, docs/retrieval.md); a backend with cosine ≥ 0.9999 ranks the same.

Rates are per process CPU-second as well as per wall second, so a machine's core count does not
flatter a backend that spins threads.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_support import EVAL, read_cues  # noqa: E402

from chaffee_assets.retrieval.embedder import Embedder, cpu_has_bfloat16  # noqa: E402
from chaffee_assets.retrieval.segmenter import SegmentParams, reference_token_counter, segment_cues  # noqa: E402

BACKENDS = ("openvino", "openvino-int8", "torch-bf16", "onnx", "onnx-int8")


def dev_segments(n: int) -> list[str]:
    library = EVAL / "huberman_dev" / "library"
    count = reference_token_counter()
    texts: list[str] = []
    for info in sorted(library.glob("*.info.json")):
        vid = info.name.removesuffix(".info.json")
        caption = next(p for p in library.iterdir() if p.name.startswith(f"{vid}.en."))
        for segment in segment_cues(read_cues(caption), SegmentParams(), count):
            texts.append(segment.text)
            if len(texts) == n:
                return texts
    return texts


def measure(embedder: Embedder, texts: list[str]) -> tuple[dict[str, float], np.ndarray]:
    embedder.encode(texts[:32])  # load, export and warm up outside the clock
    cpu0, wall0 = time.process_time(), time.perf_counter()
    vectors = embedder.encode(texts)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {"per_cpu_s": round(len(texts) / cpu, 1), "per_wall_s": round(len(texts) / wall, 1)}, vectors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, default=1024, help="segments to embed per backend")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads per backend")
    parser.add_argument("--quick", action="store_true", help="128 segments")
    args = parser.parse_args(argv)
    texts = dev_segments(128 if args.quick else args.segments)

    baseline, reference = measure(Embedder(backend="torch", threads=args.threads), texts)
    report: dict[str, object] = {
        "segments": len(texts),
        "threads": args.threads,
        "cpu_bfloat16": cpu_has_bfloat16(),
        "baseline_torch_fp32": baseline,
    }
    for backend in BACKENDS:
        embedder = Embedder(backend=backend, threads=args.threads)
        figures, vectors = measure(embedder, texts)
        cosine = np.sum(reference * vectors, axis=1)
        report[backend] = {
            **figures,
            "x_baseline_cpu": round(figures["per_cpu_s"] / baseline["per_cpu_s"], 2),
            "runtime": embedder.runtime_name,
            "cosine_to_fp32_min": round(float(cosine.min()), 5),
            "cosine_to_fp32_mean": round(float(cosine.mean()), 5),
        }
    report["machine"] = f"{platform.machine()} cpus={os.cpu_count()} {platform.processor() or ''}".strip()
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
