"""What the benchmarks share: where the evaluation data is, scratch databases, cached vectors."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chaffee_assets.ingest.captions import parse_caption_file  # noqa: E402
from chaffee_assets.ingest.cues import Cue  # noqa: E402
from chaffee_assets.retrieval.embedder import Embedder  # noqa: E402
from chaffee_assets.warehouse.migrate import upgrade  # noqa: E402

EVAL = ROOT.parent / "shared" / "eval"
VECTOR_CACHE = ROOT / ".chaffee" / "embedding_cache"


def read_cues(path: Path) -> list[Cue]:
    return parse_caption_file(path)


def database_url(name: str, explicit: str | None = None) -> str:
    """`explicit`, else a database of that name on the embedded server."""
    if explicit:
        return explicit
    from chaffee_assets.warehouse.server import embedded_server_uri

    return embedded_server_uri(name)


def fresh_database(url: str) -> None:
    """Empty the database's public schema and migrate it."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
    upgrade(url)


def cached_vectors(model_name: str, texts, encode) -> np.ndarray:
    """`encode(texts)`, memoised on disk by model and exact text (`.chaffee/embedding_cache`)."""
    out: list[np.ndarray | None] = []
    todo: list[int] = []
    paths = []
    for i, text in enumerate(texts):
        key = hashlib.sha1(f"{model_name}\0{text}".encode()).hexdigest()
        path = VECTOR_CACHE / model_name / key[:2] / f"{key}.npy"
        paths.append(path)
        if path.exists():
            out.append(np.load(path))
        else:
            out.append(None)
            todo.append(i)
    for chunk in range(0, len(todo), 512):  # saved as it goes: an interrupted run keeps its work
        batch = todo[chunk : chunk + 512]
        for i, vec in zip(batch, encode([texts[i] for i in batch]), strict=True):
            paths[i].parent.mkdir(parents=True, exist_ok=True)
            np.save(paths[i], vec)
            out[i] = vec
    return np.stack(out)


class CachedEmbedder(Embedder):
    """Memoises vectors on disk by model and exact text: re-running a benchmark costs no embedding.

    The ONNX (fp32) and torch backends give the same vectors, so either may fill the cache; the
    bfloat16 and int8 backends do not, so the cache is filled by fp32 ONNX Runtime whatever
    `CHAFFEE_EMBEDDING_BACKEND` says.
    """

    def __init__(self, model: str, **kwargs) -> None:
        super().__init__(model, **{"backend": "onnx", **kwargs})

    def encode(self, texts) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return cached_vectors(self.model_name, texts, super().encode)
