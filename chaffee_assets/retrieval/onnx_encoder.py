"""Sentence embeddings on ONNX Runtime: the same model as sentence-transformers, without PyTorch.

A sentence-transformers model (Transformer → Pooling → Normalize, the shape of every mainstream
retrieval model) is exported once with PyTorch into a folder holding `model.onnx`, the
`tokenizer.json` and a small `encoder.json` (pooling mode, input limit, dimension, prompts). After
that, encoding needs only `onnxruntime`, `tokenizers` and numpy: a command-line search starts in a
fraction of a second instead of importing torch, and the vectors are the torch ones (fp32 export:
cosine to torch ≥ 0.99999 on every dev segment, see docs/retrieval.md).

`model.int8.onnx` beside it, made when first asked for, is the same graph with its weights
dynamically quantised to int8 by ONNX Runtime (per channel). It is faster and slightly different;
whether it is used is the caller's choice (`CHAFFEE_EMBEDDING_BACKEND`), measured in
docs/retrieval.md.

The same export also runs on OpenVINO (`OpenVinoSentenceEncoder`), which on a CPU with bfloat16
instructions multiplies in bfloat16 with fp32 accumulation, at cosine ≥ 0.9999 to the fp32 vectors.
`openvino-int8-<digest>.xml` beside it, made when first asked for (`ensure_openvino_int8`), is the
graph with NNCF's static int8 quantisation, calibrated on given passages: on a CPU with int8
dot-product instructions the fastest way to embed segments, at cosine ≈ 0.996 (docs/retrieval.md).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import warnings
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

# Part of an export folder's name: a change to how models are exported makes new folders.
EXPORT_FORMAT = 4
ENCODER_FILE = "encoder.json"
FP32_FILE = "model.onnx"
WEIGHTS_FILE = "model.onnx.data"
INT8_FILE = "model.int8.onnx"
OPENVINO_INT8_STEM = "openvino-int8"
_EXPORT_LOCK = threading.Lock()


class OnnxExportError(RuntimeError):
    """The model cannot be run on ONNX Runtime (an unsupported module, a failed export)."""


def is_exported(folder: Path) -> bool:
    return (folder / ENCODER_FILE).exists() and (folder / FP32_FILE).exists()


def export_sentence_transformer(model, folder: Path, *, prompts: dict[str, str]) -> Path:
    """Export a loaded `SentenceTransformer` into `folder` (fp32); returns the folder.

    Written to a temporary sibling and renamed into place, so a concurrent process either sees a
    complete export or none (two exporters racing both succeed; one rename wins).
    """
    import torch

    transformer_type, pooling_type, normalize_type = _module_types()
    modules = list(model)
    if not modules or not isinstance(modules[0], transformer_type):
        raise OnnxExportError("the model does not start with a Transformer module")
    pooling = next((m for m in modules if isinstance(m, pooling_type)), None)
    unsupported = [type(m).__name__ for m in modules[1:] if not isinstance(m, pooling_type | normalize_type)]
    if pooling is None or unsupported:
        raise OnnxExportError(f"modules other than Pooling/Normalize after the Transformer: {unsupported}")
    mode = getattr(pooling, "pooling_mode", None) or pooling.get_pooling_mode_str()
    if mode not in ("mean", "cls", "lasttoken"):
        raise OnnxExportError(f"pooling mode {mode!r} is not supported on ONNX Runtime")
    if getattr(pooling, "include_prompt", True) is False:
        raise OnnxExportError("the model pools without its prompt tokens")
    dimension_of = (
        getattr(pooling, "get_embedding_dimension", None) or pooling.get_sentence_embedding_dimension
    )

    transformer = modules[0]
    tokenizer = transformer.tokenizer
    if not getattr(tokenizer, "is_fast", False):
        raise OnnxExportError("the model's tokenizer has no fast (tokenizers) version")
    inner = transformer.auto_model.eval()
    sample = tokenizer(["a sentence", "another"], return_tensors="pt", padding=True)
    input_names = [name for name in ("input_ids", "attention_mask", "token_type_ids") if name in sample]

    class _LastHiddenState(torch.nn.Module):
        # Keyword arguments: the positional order of HF forward() changes between releases.
        def __init__(self, wrapped: torch.nn.Module) -> None:
            super().__init__()
            self.wrapped = wrapped

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            return self.wrapped(**dict(zip(input_names, inputs, strict=True))).last_hidden_state

    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        axes = {name: {0: "batch", 1: "sequence"} for name in [*input_names, "last_hidden_state"]}
        # The legacy (TorchScript) exporter: the torch.export one needs onnxscript and fails on
        # these models' attention masks. Its tracer warnings are about values that are constant
        # for an encoder with an attention mask; tests compare the exported vectors with torch's.
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _LastHiddenState(inner),
                tuple(sample[name] for name in input_names),
                str(staging / FP32_FILE),
                input_names=input_names,
                output_names=["last_hidden_state"],
                dynamic_axes=axes,
                opset_version=17,
                dynamo=False,
            )
        _keep_weights_beside(staging / FP32_FILE)
        tokenizer.backend_tokenizer.save(str(staging / "tokenizer.json"))
        (staging / ENCODER_FILE).write_text(
            json.dumps(
                {
                    "pooling": mode,
                    "normalize": any(isinstance(m, normalize_type) for m in modules),
                    "max_seq_length": int(model.max_seq_length),
                    "dimension": int(dimension_of()),
                    "inputs": input_names,
                    "pad_token_id": int(tokenizer.pad_token_id or 0),
                    "prompts": prompts,
                }
            ),
            encoding="utf-8",
        )
        with _EXPORT_LOCK:
            if is_exported(folder):
                shutil.rmtree(staging)
            else:
                if folder.exists():
                    shutil.rmtree(folder)
                os.replace(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return folder


def _keep_weights_beside(graph: Path) -> None:
    """Re-save the graph with its weights in a file of their own (`model.onnx.data`).

    ONNX Runtime then reads the weights as raw bytes instead of parsing them out of one large
    protobuf message: a session starts in about a third of the time (0.07 s instead of 0.2-0.3 s
    for MiniLM), which is most of what a command-line search pays for embedding its question.
    """
    import onnx

    model = onnx.load(str(graph))
    onnx.save_model(
        model,
        str(graph),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=WEIGHTS_FILE,
        size_threshold=1024,
    )


def ensure_quantized(folder: Path) -> Path:
    """The export's int8 graph, made from its fp32 one the first time it is asked for."""
    target = folder / INT8_FILE
    if not target.exists():
        staging = target.with_name(f".{target.name}.{os.getpid()}")
        try:
            _quantize(folder / FP32_FILE, staging)
            os.replace(staging, target)
        finally:
            staging.unlink(missing_ok=True)
    return target


def _quantize(fp32: Path, int8: Path) -> None:
    """int8 weights, activations quantised on the fly (dynamic), per output channel.

    The graph is first fused by ONNX Runtime's transformer optimizer (attention, layer norm,
    GELU), which measured 1.7-1.9x the fp32 throughput after quantisation against 1.3x without;
    a model the optimizer does not know is quantised as exported.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    source = fp32
    fused = int8.with_name(f"{int8.name}.fused")
    try:
        from onnxruntime.transformers import optimizer

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            optimizer.optimize_model(str(fp32), model_type="bert", opt_level=1).save_model_to_file(str(fused))
        source = fused
    except Exception:  # noqa: BLE001 - any failure of the optional fusion leaves the plain graph
        source = fp32
    quantizer_log = logging.getLogger()
    level = quantizer_log.level
    quantizer_log.setLevel(logging.ERROR)  # the quantizer's advice to pre-process is for CNNs
    try:
        quantize_dynamic(
            str(source),
            str(int8),
            weight_type=QuantType.QInt8,
            per_channel=True,
            # The fused graph's custom operators carry no shape-inferred types; their outputs are float.
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    finally:
        quantizer_log.setLevel(level)
        fused.unlink(missing_ok=True)


def ensure_openvino_int8(folder: Path, calibration: Sequence[str]) -> Path:
    """The export's graph with int8 matrix products for OpenVINO, made from its fp32 graph by NNCF
    the first time it is asked for, its activation ranges calibrated on `calibration` (passages as
    the model reads them). The file name carries a digest of those texts: other texts, another graph.
    """
    digest = hashlib.sha1("\x00".join(calibration).encode()).hexdigest()[:10]
    target = folder / f"{OPENVINO_INT8_STEM}-{digest}.xml"
    if not target.exists():
        staging = Path(tempfile.mkdtemp(prefix=".openvino-int8-", dir=folder))
        try:
            _quantize_for_openvino(folder, calibration, staging / target.name)
            # The weights first: a graph file that exists always has its weights beside it.
            os.replace(staging / target.with_suffix(".bin").name, target.with_suffix(".bin"))
            os.replace(staging / target.name, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _quantize_for_openvino(folder: Path, calibration: Sequence[str], target: Path) -> None:
    """Write the int8 graph to `target`. Any failure of NNCF (not installed, a graph it cannot
    quantise) becomes an OnnxExportError naming it, and the caller keeps the float graph."""
    if not calibration:
        raise OnnxExportError("no calibration passages for the int8 graph")
    openvino = import_openvino_without_telemetry()
    try:
        quantized = _nncf_quantize(openvino, folder, calibration)
    except Exception as exc:  # noqa: BLE001 - any failure of the optional graph: the caller keeps the float one
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise OnnxExportError(f"cannot make the int8 graph of {folder.name}: {first_line}") from exc
    openvino.save_model(quantized, str(target), compress_to_fp16=False)


def _nncf_quantize(openvino, folder: Path, calibration: Sequence[str]):
    """Static int8 quantisation (NNCF's post-training `quantize` for transformers, SmoothQuant on).

    Every matrix product with weights runs in int8; the two per attention head that multiply
    activations by activations (query × key, scores × value) stay in floating point: quantising
    them too took the vectors further from fp32 (mean cosine 0.9951 against 0.9972) and measured
    slower, not faster; at 256 word pieces they are a few percent of the model's work
    (docs/retrieval.md).
    """
    with _nncf_quietly() as nncf:
        facts = ExportedModelFacts(folder)
        input_names = facts.config["inputs"]

        def feeds(text: str) -> dict[str, np.ndarray]:
            ids = np.array(
                [OnnxSentenceEncoder._truncate(facts.tokenizer.encode(text).ids, facts.max_seq_length)]
            )
            rows = {
                "input_ids": ids,
                "attention_mask": np.ones_like(ids),
                "token_type_ids": np.zeros_like(ids),
            }
            return {name: rows[name] for name in input_names}

        model = openvino.Core().read_model(str(folder / FP32_FILE))
        quantized = nncf.quantize(
            model,
            nncf.Dataset(list(calibration), feeds),
            model_type=nncf.ModelType.TRANSFORMER,
            subset_size=len(calibration),
            # Names as torch.onnx writes a Hugging Face BERT-style encoder; a model named otherwise
            # has those products quantised too, which its parity measurement would show.
            ignored_scope=nncf.IgnoredScope(patterns=[r".*attention/self/MatMul(_\d+)?$"], validate=False),
        )
    return quantized


@contextmanager
def _nncf_quietly():
    """`import nncf` with its usage telemetry declined and its progress bars and log kept off the
    command's output: quantising is a one-off step inside an ingest, whose own progress lines
    (printed from other threads too) must still show, so stdout itself is not redirected."""
    import_openvino_without_telemetry()  # NNCF's telemetry shares OpenVINO's declined consent
    import nncf
    import rich

    console = rich.get_console()  # where NNCF's progress bars draw
    level, quiet = nncf.common.logging.logger.nncf_logger.level, console.quiet
    nncf.set_log_level(logging.ERROR)
    console.quiet = True
    try:
        yield nncf
    finally:
        nncf.set_log_level(level)
        console.quiet = quiet


def _module_types() -> tuple[type, type, type]:
    """sentence-transformers' Transformer, Pooling and Normalize classes (moved in release 6)."""
    try:
        from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    except ImportError:
        from sentence_transformers.models import Normalize, Pooling, Transformer
    return Transformer, Pooling, Normalize


class ExportedModelFacts:
    """What an export says about its model (dimension, input limit, prompts, tokenizer), read from
    its small files without starting a runtime: a process that only cuts segments or registers the
    model needs no graph loaded."""

    def __init__(self, folder: Path) -> None:
        self._read_export(folder)

    def _read_export(self, folder: Path) -> None:
        """The export's description and tokenizer, which every runtime of it shares."""
        from tokenizers import Tokenizer

        self.folder = folder
        self.config = json.loads((folder / ENCODER_FILE).read_text(encoding="utf-8"))
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()

    @property
    def max_seq_length(self) -> int:
        return int(self.config["max_seq_length"])

    @property
    def dimension(self) -> int:
        return int(self.config["dimension"])

    @property
    def prompts(self) -> dict[str, str]:
        return dict(self.config.get("prompts") or {})

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False).ids)


class OnnxSentenceEncoder(ExportedModelFacts):
    """Encodes texts with an exported model on ONNX Runtime; `quantized` picks the int8 graph."""

    def __init__(self, folder: Path, *, quantized: bool = False, threads: int | None = None) -> None:
        import onnxruntime

        self._read_export(folder)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or 0  # 0: one thread per core
        options.inter_op_num_threads = 1
        # Idle worker threads sleep instead of spinning: spinning burns CPU that the database and
        # the rest of an ingest run need (it measured 8% more CPU for the same vectors).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        graph = folder / (INT8_FILE if quantized else FP32_FILE)
        self.session = onnxruntime.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
        self.quantized = quantized

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Normalised float32 vectors; inputs longer than the model reads are cut as torch cuts them."""
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        encodings = self.tokenizer.encode_batch(list(texts))
        limit = self.max_seq_length
        ids = [self._truncate(e.ids, limit) for e in encodings]
        # Similar lengths together: a batch pads to its longest member.
        order = np.argsort([len(i) for i in ids], kind="stable")
        pad = self.config.get("pad_token_id", 0)
        for begin in range(0, len(order), batch_size):
            rows = order[begin : begin + batch_size]
            width = max(len(ids[r]) for r in rows)
            input_ids = np.full((len(rows), width), pad, dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for i, r in enumerate(rows):
                input_ids[i, : len(ids[r])] = ids[r]
                mask[i, : len(ids[r])] = 1
            feeds = {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": np.zeros_like(mask)}
            hidden = self._run({k: feeds[k] for k in self.config["inputs"]})
            out[rows] = self._pool(hidden, mask)
        return out

    def _run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """The graph's first output (token vectors) for one padded batch."""
        return self.session.run(None, feeds)[0]

    @staticmethod
    def _truncate(ids: list[int], limit: int) -> list[int]:
        # Keep the special tokens at both ends ([CLS] … [SEP]), as the torch tokenizer's truncation does.
        return ids if len(ids) <= limit else [*ids[: limit - 1], ids[-1]]

    def _pool(self, hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
        mode = self.config["pooling"]
        if mode == "cls":
            pooled = hidden[:, 0]
        elif mode == "lasttoken":
            pooled = hidden[np.arange(len(hidden)), mask.sum(axis=1) - 1]
        else:
            weights = mask[..., None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        if self.config.get("normalize", True):
            pooled = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return pooled.astype(np.float32, copy=False)


def import_openvino_without_telemetry():
    """`import openvino`, with its usage telemetry declined.

    Importing OpenVINO's package starts the telemetry of its model converter, which counts itself
    consented when no `~/intel/openvino_telemetry` file says otherwise: it writes a client id under
    `~/intel` and forks a process to send an event to Google Analytics. Nothing of an ingest leaves
    the machine unasked, so the consent check answers "declined" while the package loads (the
    telemetry object is a singleton and keeps that answer).
    """
    if "openvino" in sys.modules:
        return sys.modules["openvino"]
    try:
        from openvino_telemetry.utils.opt_in_checker import ConsentCheckResult, OptInChecker
    except ImportError:  # a release without the telemetry package
        import openvino

        return openvino
    check = OptInChecker.check
    OptInChecker.check = lambda self, *args, **kwargs: ConsentCheckResult.DECLINED
    try:
        import openvino
    finally:
        OptInChecker.check = check
    return openvino


class OpenVinoSentenceEncoder(OnnxSentenceEncoder):
    """Encodes texts with the fp32 export on OpenVINO: in bfloat16 where the CPU has it, else fp32.
    `graph` names another graph of the same export (the int8 one); its floating-point parts run at
    that same precision.

    Tokenising, batching and pooling are the ONNX Runtime encoder's; only the graph's runtime
    differs. OpenVINO compiles the graph for this CPU in a fraction of a second, once per process.
    """

    def __init__(
        self, folder: Path, *, bfloat16: bool, threads: int | None = None, graph: Path | None = None
    ) -> None:
        openvino = import_openvino_without_telemetry()
        self._read_export(folder)
        self.precision = "bf16" if bfloat16 else "f32"
        self.graph = graph or folder / FP32_FILE
        core = openvino.Core()
        try:
            compiled = core.compile_model(
                core.read_model(str(self.graph)),
                "CPU",
                {
                    # Stated, not left to OpenVINO's default, so vectors do not change with its version.
                    "INFERENCE_PRECISION_HINT": self.precision,
                    # One stream using every allowed core: batches come one at a time.
                    "PERFORMANCE_HINT": "LATENCY",
                    "INFERENCE_NUM_THREADS": threads or 0,  # 0: OpenVINO's choice, every core
                },
            )
        except RuntimeError as exc:  # OpenVINO's error for a graph or device it cannot handle
            raise OnnxExportError(
                f"OpenVINO cannot run {folder.name}: {str(exc).strip().splitlines()[0]}"
            ) from exc
        self._request = compiled.create_infer_request()
        self._output = compiled.outputs[0]
        self._request_lock = threading.Lock()

    def _run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        with self._request_lock:  # one infer request: callers on other threads take turns
            return np.array(self._request.infer(feeds)[self._output], copy=True)
