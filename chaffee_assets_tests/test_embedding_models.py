"""Embedding models: the ONNX Runtime backend, prompts, long passages, a second model kept complete
through re-cuts, and the optional cross-encoder, each on real text and a real warehouse."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import psycopg
import pytest

from chaffee_assets.retrieval.embedder import Embedder, default_model_path
from chaffee_assets.retrieval.models import model_card
from chaffee_assets.search import search
from chaffee_assets.settings import DEFAULT_EMBEDDING_MODEL, PROJECT_ROOT
from chaffee_assets.warehouse import connect
from chaffee_assets_tests.conftest import shared_path
from chaffee_assets_tests.retrieval_helpers import caption_file, tiny_model

DEV_VIDEOS = ["QmOF0crdyRU", "BMTt8gSl13s", "Gf-kC30SLtc"]


@pytest.fixture(scope="module")
def dev_texts() -> list[str]:
    from chaffee_assets.ingest.captions import parse_caption_file
    from chaffee_assets.retrieval.segmenter import SegmentParams, reference_token_counter, segment_cues

    library = shared_path("eval", "huberman_dev", "library")
    texts: list[str] = []
    for video_id in DEV_VIDEOS:
        cues = parse_caption_file(caption_file(library, video_id))
        texts += [s.text for s in segment_cues(cues, SegmentParams(), reference_token_counter())]
    return texts


def test_the_onnx_backend_gives_the_torch_vectors(chaffee_home, dev_texts):
    texts = [*dev_texts[:40], "does fasting lower insulin", "🥩", "a"]
    torch_vectors = Embedder(backend="torch").encode(texts)
    onnx = Embedder(backend="onnx")
    onnx_vectors = onnx.encode(texts)
    assert onnx.runtime_name == "onnx"
    cosines = (torch_vectors * onnx_vectors).sum(axis=1)
    assert cosines.min() > 0.9999
    assert np.allclose(np.linalg.norm(onnx_vectors, axis=1), 1, atol=1e-5)
    # The weights sit beside the graph (raw bytes, not one large protobuf message to parse), which
    # is what lets a command-line search start its session quickly (bench/bench_cli.py).
    graph, weights = onnx.export_folder / "model.onnx", onnx.export_folder / "model.onnx.data"
    assert weights.stat().st_size > 50_000_000 and graph.stat().st_size < 1_000_000


def test_the_openvino_backend_gives_the_fp32_vectors(chaffee_home, dev_texts):
    from chaffee_assets.retrieval.embedder import cpu_has_bfloat16

    texts = [*dev_texts[:40], "does fasting lower insulin", "🥩", "a"]
    fp32 = Embedder(backend="onnx").encode(texts)
    openvino = Embedder(backend="openvino")
    vectors = openvino.encode(texts)
    assert openvino.runtime_name == "openvino"
    encoder = openvino._exported["openvino"]
    assert encoder.precision == ("bf16" if cpu_has_bfloat16() else "f32")
    cosines = (fp32 * vectors).sum(axis=1)
    assert cosines.min() > 0.9999
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    # Batched or alone, a text gets its vector (padding inside a batch must not leak into it).
    alone = openvino.encode([texts[3]])[0]
    assert float(alone @ vectors[3]) > 0.9999


def test_passages_are_embedded_on_openvino_by_default_in_int8_where_measured_and_the_cpu_multiplies_int8(
    chaffee_home, tmp_path
):
    from chaffee_assets.retrieval.embedder import cpu_has_int8_dot_product

    auto = Embedder()
    auto.encode(["salt and fat"])
    expected = "openvino-int8" if cpu_has_int8_dot_product() else "openvino"
    assert auto.runtime_name == expected and auto.query_runtime_name == "onnx"
    assert Embedder(device="cuda").passage_backend == "torch"
    # A model whose int8 graph was never measured against the evaluation keeps the float graph.
    assert Embedder(str(tiny_model(tmp_path))).passage_backend == "openvino"


def test_an_export_openvino_cannot_read_leaves_the_passages_to_torch(chaffee_home, tmp_path):
    folder = tiny_model(tmp_path)
    torch_vectors = Embedder(str(folder), backend="torch").encode(["salt and fat"])
    exporter = Embedder(str(folder), backend="onnx")
    exporter.encode(["export it"])
    (exporter.export_folder / "model.onnx").write_bytes(b"not an ONNX graph")
    embedder = Embedder(str(folder), backend="openvino")
    assert embedder.runtime_name == "torch"
    assert np.allclose(embedder.encode(["salt and fat"]), torch_vectors, atol=1e-5)


def test_the_int8_backend_is_close_but_not_identical(chaffee_home, dev_texts):
    fp32 = Embedder(backend="onnx").encode(dev_texts[:40])
    int8 = Embedder(backend="onnx-int8")
    vectors = int8.encode(dev_texts[:40])
    cosines = (fp32 * vectors).sum(axis=1)
    assert int8.runtime_name == "onnx-int8"
    assert cosines.mean() > 0.98 and cosines.min() > 0.95
    assert cosines.min() < 0.9999  # really the quantised graph, not the fp32 one


def run_in_fresh_python(probe: str, chaffee_home: Path, **env: str) -> str:
    """`probe` run by a new interpreter on the suite's CHAFFEE_HOME; returns what it printed."""
    environment = {**os.environ, "CHAFFEE_HOME": str(chaffee_home), "HF_HUB_OFFLINE": "1", **env}
    done = subprocess.run(
        [sys.executable, "-c", probe], env=environment, capture_output=True, text=True, cwd=PROJECT_ROOT
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_question_is_embedded_without_importing_torch_once_the_model_is_exported(chaffee_home):
    Embedder(backend="onnx").encode(["export it now"])  # the first use exports, with torch
    probe = (
        "import sys; from chaffee_assets.search import embedder_for; "
        "v = embedder_for('all-MiniLM-L6-v2').encode_queries(['does fasting lower insulin']); "
        "print(len(v[0]), 'torch' in sys.modules, 'sentence_transformers' in sys.modules)"
    )
    assert run_in_fresh_python(probe, chaffee_home).split() == ["384", "False", "False"]


def test_cutting_segments_and_preparing_for_questions_start_no_runtime_once_exported(chaffee_home):
    """An ingest's segment step counts word pieces and reads the model's dimension; once the model
    is exported, that comes from the export's own files, and making sure a later search needs no
    torch only checks those files: no runtime is started for either."""
    Embedder(backend="onnx").encode(["export it now"])
    probe = (
        "import sys; from chaffee_assets.retrieval.embedder import Embedder; e = Embedder(); "
        "facts = (e.dimension, e.max_seq_length, e.count_tokens('does fasting lower insulin'), e.prompts); "
        "e.prepare_for_queries(); "
        "print(facts[:3], sorted(m for m in ('onnxruntime', 'openvino', 'torch') if m in sys.modules))"
    )
    printed = run_in_fresh_python(probe, chaffee_home)
    reference = Embedder(backend="torch")
    counted = reference.count_tokens("does fasting lower insulin")
    assert printed.strip() == f"(384, {reference.max_seq_length}, {counted}) []"


def test_with_torch_loaded_an_exported_model_s_word_pieces_are_counted_by_the_export_s_tokenizer(
    chaffee_home, dev_texts, monkeypatch
):
    """An ingest in a new home loads torch to make the export, then counts every passage it embeds:
    by the export's own tokenizer file, which counts what transformers' tokenizer counts, without
    transformers' per-call cost."""
    embedder = Embedder(backend="openvino")
    embedder.encode(["export it now"])
    model = embedder._load_torch()
    texts = dev_texts[:30] + [word for text in dev_texts[:10] for word in text.split()[:8]]
    expected = [len(model.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]

    def not_called(*args, **kwargs):
        raise AssertionError("counted by transformers' tokenizer")

    monkeypatch.setattr(type(model.tokenizer), "__call__", not_called)
    assert [embedder.count_tokens(t) for t in texts] == expected


def test_embedding_on_openvino_sends_no_telemetry(chaffee_home, tmp_path):
    """Importing OpenVINO starts its converter's usage telemetry, consented by default: a client id
    written under ~/intel and an event sent to Google Analytics. The product declines it."""
    Embedder(backend="onnx").encode(["export it now"])
    probe = (
        "from chaffee_assets.retrieval.embedder import Embedder; "
        "e = Embedder(backend='openvino'); print(len(e.encode_passages(['salt'])[0]), e.runtime_name)"
    )
    home = tmp_path / "home"
    home.mkdir()
    assert run_in_fresh_python(probe, chaffee_home, HOME=str(home)).split() == ["384", "openvino"]
    assert not (home / "intel").exists(), sorted(p.name for p in (home / "intel").iterdir())


def test_the_openvino_int8_graph_is_calibrated_on_the_sample_library_quietly_and_sends_nothing(
    chaffee_home, tmp_path, dev_texts
):
    """A fresh process with an empty HOME makes the int8 graph (NNCF, calibrated on the packaged
    sample library) and embeds with it: vectors near fp32 but not fp32's, nothing printed on the
    command's output, nothing written under ~/intel by NNCF's or OpenVINO's telemetry (which NNCF
    turns off by itself inside pytest, hence the separate process)."""
    texts = dev_texts[:24]
    fp32 = Embedder(backend="onnx").encode(texts)
    export = Embedder().export_folder
    for made_earlier in export.glob("openvino-int8-*"):  # the probe must make the graph itself
        made_earlier.unlink()
    probe = (
        "import json, sys; from chaffee_assets.retrieval.embedder import Embedder; "
        "e = Embedder(backend='openvino-int8'); "
        "v = e.encode(json.load(sys.stdin)); "
        "print(json.dumps({'runtime': e.runtime_name, 'graph': e._exported['openvino-int8'].graph.name, "
        "'vectors': v.tolist()}))"
    )
    home = tmp_path / "home"
    home.mkdir()
    environment = {**os.environ, "CHAFFEE_HOME": str(chaffee_home), "HF_HUB_OFFLINE": "1", "HOME": str(home)}
    done = subprocess.run(
        [sys.executable, "-c", probe],
        input=json.dumps(texts),
        env=environment,
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
    )
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)  # one JSON line: no progress bar or log line around it
    assert printed["runtime"] == "openvino-int8"
    assert printed["graph"].startswith("openvino-int8-") and printed["graph"].endswith(".xml")
    cosines = (fp32 * np.array(printed["vectors"], dtype=np.float32)).sum(axis=1)
    assert cosines.mean() > 0.99 and cosines.min() > 0.98
    assert cosines.min() < 0.9999  # really the quantised graph, not the fp32 one
    assert "nncf" not in done.stderr.lower(), done.stderr
    assert not (home / "intel").exists(), sorted(p.name for p in (home / "intel").iterdir())

    # The graph is made once per export and calibration set: another process reuses it.
    graph = export / printed["graph"]
    made = graph.stat().st_mtime_ns
    again = Embedder(backend="openvino-int8")
    same = (again.encode(texts[:4]) * np.array(printed["vectors"][:4], dtype=np.float32)).sum(axis=1)
    assert same.min() > 0.9999
    assert graph.stat().st_mtime_ns == made
    assert sorted(p.name for p in export.glob("openvino-int8-*")) == sorted(
        [graph.name, graph.with_suffix(".bin").name]
    )


def test_without_an_int8_graph_segments_are_embedded_by_the_float_graph_not_stopped(
    chaffee_home, dev_texts, monkeypatch, caplog
):
    """NNCF failing on the model (or missing) costs speed, not the ingest: the int8 backend falls
    back to OpenVINO's float graph, says so once, and reports the runtime it really used."""
    import nncf

    def cannot(*args, **kwargs):
        raise RuntimeError("unsupported operation in this graph\nsecond line")

    export = Embedder().export_folder
    Embedder(backend="onnx").encode(["export it now"])
    for made_earlier in export.glob("openvino-int8-*"):
        made_earlier.unlink()
    monkeypatch.setattr(nncf, "quantize", cannot)
    texts = dev_texts[:8]
    embedder = Embedder(backend="openvino-int8")
    vectors = embedder.encode(texts)
    assert embedder.runtime_name == "openvino"
    cosines = (Embedder(backend="onnx").encode(texts) * vectors).sum(axis=1)
    assert cosines.min() > 0.9999  # the float graph's vectors
    warned = [r.getMessage() for r in caplog.records if "int8 graph" in r.getMessage()]
    assert warned == [
        f"cannot make the int8 graph of {export.name}: unsupported operation in this graph; "
        "segments are embedded by the float graph"
    ]
    assert not list(export.glob("openvino-int8-*")) and not list(export.glob(".openvino-int8-*"))


def test_a_model_s_declared_prompts_are_used_for_questions_and_passages(chaffee_home, tmp_path):
    folder = tiny_model(tmp_path)
    config = folder / "config_sentence_transformers.json"
    settings = json.loads(config.read_text()) if config.exists() else {}
    settings["prompts"] = {"query": "query: ", "document": "passage: "}
    config.write_text(json.dumps(settings))
    for backend in ("torch", "onnx", "openvino"):
        embedder = Embedder(str(folder), backend=backend)
        assert embedder.prompts == {"query": "query: ", "passage": "passage: "}
        question, passage = embedder.encode_queries(["salt"])[0], embedder.encode_passages(["salt"])[0]
        assert np.allclose(question, embedder.encode(["query: salt"])[0], atol=1e-5)
        assert np.allclose(passage, embedder.encode(["passage: salt"])[0], atol=1e-5)
        assert not np.allclose(question, passage, atol=1e-3)


def test_published_prompts_of_known_models_fill_in_for_silent_configurations():
    assert model_card("intfloat/e5-small-v2").query_prompt == "query: "
    assert model_card("intfloat/e5-small-v2").passage_prompt == "passage: "
    assert model_card("BAAI/bge-small-en-v1.5").query_prompt.startswith("Represent this sentence")
    assert model_card("nomic-embed-text-v1.5").passage_prompt == "search_document: "
    assert model_card("some/unknown-model").query_prompt == ""
    assert model_card(DEFAULT_EMBEDDING_MODEL).min_similarity is not None


def test_a_passage_longer_than_the_model_reads_is_embedded_whole_in_pieces(chaffee_home, tmp_path, dev_texts):
    # The tiny model reads 128 pieces; a 60 s segment holds about 200.
    embedder = Embedder(str(tiny_model(tmp_path)), backend="onnx")
    passage = dev_texts[0]
    assert embedder.count_tokens(passage) + 2 > embedder.max_seq_length
    budget = embedder.max_seq_length - 2
    pieces = embedder._pieces(passage, budget)
    assert len(pieces) >= 2 and all(size <= budget for _, size in pieces)
    assert " ".join(text for text, _ in pieces) == " ".join(passage.split())
    expected = sum(
        size * vector
        for (_, size), vector in zip(pieces, embedder.encode([t for t, _ in pieces]), strict=True)
    )
    expected /= np.linalg.norm(expected)
    assert np.allclose(embedder.encode_passages([passage])[0], expected, atol=1e-5)
    # Cut off at the model's limit instead, the end of the passage would change nothing:
    truncated = embedder.encode([passage])[0]
    assert not np.allclose(truncated, expected, atol=1e-3)


def _ingest(library: Path, days, run_config: dict | None = None):
    import dagster as dg

    from chaffee_assets.defs.resources import video_source_config
    from chaffee_assets.ingest_runner import ingest_days
    from chaffee_assets.settings import settings

    source = video_source_config(settings(), library_dir=str(library))
    config = {"resources": {"video_source": {"config": source}}, **(run_config or {})}
    with dg.instance_for_test() as instance:
        report = ingest_days(days, instance=instance, run_config=config, use_daemon=False)
    assert not report.failed, f"runs failed for {report.failed}"


def _coverage(url: str) -> dict[str, tuple[int, int]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT model, segments_embedded, segments_total FROM embedding_coverage"
        ).fetchall()
    return {model: (embedded, total) for model, embedded, total in rows}


def test_a_second_model_stays_complete_and_searchable_when_segments_are_re_cut(warehouse_url, tmp_path):
    from chaffee_assets.ingest.library import LibrarySource
    from chaffee_assets.retrieval.pipeline import embed_missing

    library = tmp_path / "library"
    library.mkdir()
    source = shared_path("eval", "huberman_dev", "library")
    for video_id in DEV_VIDEOS:
        for file in source.iterdir():
            if file.name.startswith(f"{video_id}."):
                shutil.copy(file, library / file.name)
    days = sorted(LibrarySource(library).publish_dates())
    _ingest(library, days)

    # A second model beside the first: the MiniLM files under another name (no model hub here).
    second_folder = tmp_path / "minilm-second"
    shutil.copytree(default_model_path(), second_folder)
    second = Embedder(str(second_folder))
    with connect(warehouse_url) as conn:
        embed_missing(conn, None, second)
    segments_before = _coverage(warehouse_url)[DEFAULT_EMBEDDING_MODEL][1]
    assert _coverage(warehouse_url)["minilm-second"] == (segments_before, segments_before)

    # Re-cut every video (what a new transcript does): every old vector goes with its segment.
    _ingest(library, days, {"ops": {"segments": {"config": {"force": True}}}})
    coverage = _coverage(warehouse_url)
    with psycopg.connect(warehouse_url) as conn:
        fresh = conn.execute("SELECT min(segment_id) FROM segments").fetchone()[0]
    assert fresh > segments_before  # new segment ids: the segments really were re-cut
    total = coverage[DEFAULT_EMBEDDING_MODEL][1]
    assert coverage[DEFAULT_EMBEDDING_MODEL] == (total, total)
    assert coverage["minilm-second"] == (total, total)
    with connect(warehouse_url) as conn:
        for model, embedder in ((DEFAULT_EMBEDDING_MODEL, Embedder()), ("minilm-second", second)):
            hits = search("how does light affect sleep", 5, conn=conn, embedder=embedder, model=model)
            assert hits and {h.video_id for h in hits} <= set(DEV_VIDEOS)


def tiny_cross_encoder(path: Path) -> Path:
    """A cross-encoder with random weights on MiniLM's vocabulary, built offline: its scores mean
    nothing, which is enough to show the re-ranking plumbing (loading, scoring, reordering)."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    tokenizer = BertTokenizerFast.from_pretrained(str(default_model_path()))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=512, num_labels=1,
    )  # fmt: skip
    out = path / "tiny-cross-encoder"
    BertForSequenceClassification(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def test_a_reranker_reorders_the_fused_hits_by_its_own_scores(warehouse_url, tmp_path):
    from chaffee_assets.retrieval.reranker import Reranker
    from chaffee_assets.search import SearchOptions
    from chaffee_assets_tests.retrieval_helpers import load_library

    embedder = Embedder()
    with connect(warehouse_url) as conn:
        load_library(conn, shared_path("eval", "huberman_dev", "library"), DEV_VIDEOS, embedder)
        question = "how does light affect sleep"
        plain = search(question, 20, conn=conn, embedder=embedder, reranker="")
        reranker = Reranker(str(tiny_cross_encoder(tmp_path)))
        options = SearchOptions(rerank_depth=20)
        reranked = search(question, 5, conn=conn, embedder=embedder, reranker=reranker, options=options)
    scores = reranker.score(question, [h.text for h in plain])
    expected = [plain[i].segment_id for i in np.argsort(-scores, kind="stable")[:5]]
    assert [h.segment_id for h in reranked] == expected
    assert [h.rerank_score for h in reranked] == sorted((h.rerank_score for h in reranked), reverse=True)
    assert all(h.rerank_score is None for h in plain)


def test_an_unloadable_reranker_is_one_clear_error(warehouse_url):
    from chaffee_assets.retrieval.embedder import EmbeddingModelError
    from chaffee_assets.retrieval.reranker import Reranker

    with pytest.raises(EmbeddingModelError, match="cannot load reranker /no/such/cross-encoder"):
        Reranker("/no/such/cross-encoder").score("q", ["a passage"])
