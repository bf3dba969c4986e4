"""An optional cross-encoder that re-scores the best fused hits (`CHAFFEE_RERANKER`).

A cross-encoder reads the question and a passage together, which a bi-encoder cannot, and is the
usual last stage of a search engine. It runs only over the few dozen hits the SQL ranking returns,
so its cost is bounded per question. No such weights reach the machines this project is built on,
so nothing is configured by default and its quality is not measured here (docs/retrieval.md).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from chaffee_assets.retrieval.embedder import EmbeddingModelError, only_local_files


class Reranker:
    """A sentence-transformers `CrossEncoder` by name or local folder, loaded on first use."""

    def __init__(self, model: str, *, device: str | None = None, batch_size: int = 32) -> None:
        self.model_name = model
        self.device = device or "cpu"
        self.batch_size = batch_size
        self._model = None
        self._lock = threading.Lock()

    def _load(self):
        with self._lock:
            if self._model is None:
                from sentence_transformers import CrossEncoder

                local_only = only_local_files(self.model_name)
                try:
                    self._model = CrossEncoder(
                        self.model_name, device=self.device, local_files_only=local_only
                    )
                except OSError as exc:
                    raise EmbeddingModelError(
                        f"cannot load reranker {self.model_name}: {str(exc).splitlines()[0]} "
                        "(unset CHAFFEE_RERANKER, or name a cross-encoder this machine has)"
                    ) from exc
            return self._model

    def score(self, question: str, passages: Sequence[str]) -> np.ndarray:
        """One relevance score per passage (higher is better)."""
        if not passages:
            return np.zeros(0, dtype=np.float32)
        model = self._load()
        scores = model.predict(
            [(question, passage) for passage in passages],
            batch_size=self.batch_size,
            show_progress_bar=False,
            convert_to_numpy=True,
        )
        scores = np.asarray(scores, dtype=np.float32)
        # A model with several labels scores the last one as "relevant".
        return scores[:, -1] if scores.ndim == 2 else scores
