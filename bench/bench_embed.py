"""Benchmark: segments embedded per second by the default model, per backend.

    python bench/bench_embed.py [--segments 1024] [--quick]

Backends: sentence-transformers on torch (fp32, the default), the same model with its Linear
layers dynamically quantised to int8 by torch, and sentence-transformers' ONNX backend when it
can load offline. Inputs are real dev-library segments with their title prefix, as embedded.
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

from chaffee_assets.retrieval.embedder import Embedder, default_model_path, document_text  # noqa: E402
from chaffee_assets.retrieval.segmenter import SegmentParams, segment_cues  # noqa: E402


def dev_inputs(embedder: Embedder, n: int) -> list[str]:
    library = EVAL / "huberman_dev" / "library"
    texts: list[str] = []
    for info in sorted(library.glob("*.info.json")):
        vid = info.name.removesuffix(".info.json")
        title = json.loads(info.read_text(encoding="utf-8"))["title"]
        caption = next(p for p in library.iterdir() if p.name.startswith(f"{vid}.en."))
        for seg in segment_cues(read_cues(caption), SegmentParams(), embedder.count_tokens):
            texts.append(document_text(title, seg.text, count_tokens=embedder.count_tokens))
            if len(texts) == n:
                return texts
    return texts


def rate(encode, texts: list[str]) -> tuple[float, np.ndarray]:
    encode(texts[:16])  # warm up
    t0 = time.perf_counter()
    vectors = np.asarray(encode(texts))
    return round(len(texts) / (time.perf_counter() - t0), 1), vectors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, default=1024, help="segments to embed per backend")
    parser.add_argument("--quick", action="store_true", help="128 segments")
    args = parser.parse_args(argv)
    n = 128 if args.quick else args.segments
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    embedder = Embedder()
    texts = dev_inputs(embedder, n)
    report: dict[str, object] = {"segments": len(texts), "threads": torch.get_num_threads()}
    report["torch_fp32_per_s"], base = rate(embedder.encode, texts)

    quantised = torch.quantization.quantize_dynamic(embedder.model, {torch.nn.Linear}, dtype=torch.qint8)

    def encode_int8(batch):
        return quantised.encode(batch, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)

    report["torch_int8_dynamic_per_s"], q = rate(encode_int8, texts)
    report["int8_cosine_to_fp32_mean"] = round(float(np.mean(np.sum(base * q, axis=1))), 4)

    try:
        from sentence_transformers import SentenceTransformer

        onnx = SentenceTransformer(
            str(default_model_path()), backend="onnx", device="cpu", local_files_only=True
        )
        report["onnx_per_s"], _ = rate(
            lambda b: onnx.encode(b, batch_size=64, normalize_embeddings=True), texts
        )
    except Exception as exc:  # optimum-onnx is not installable beside transformers 5 (docs/retrieval.md)
        report["onnx"] = f"unavailable offline: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
    report["machine"] = f"{platform.machine()} cpus={os.cpu_count()}"
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
