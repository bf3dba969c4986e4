"""The whole asset graph over a real library, through Dagster's own materialisation, on real PostgreSQL."""

from __future__ import annotations

import json
import os
import shutil
from datetime import date
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from chaffee_assets.definitions import INGEST_ASSETS, build_resources
from chaffee_assets.defs.resources import VideoSourceResource, video_source_config
from chaffee_assets.ingest.library import LibrarySource
from chaffee_assets.ingest_runner import ingest_days
from chaffee_assets.retrieval.embedder import Embedder, default_model_path
from chaffee_assets.retrieval.pipeline import embed_missing
from chaffee_assets.search import search
from chaffee_assets.settings import DEFAULT_EMBEDDING_MODEL, settings

from .conftest import _fresh_database, shared_path
from .dagster_instances import kept_connections_instance

TABLES = ("videos", "transcripts", "transcript_attempts", "segments", "segment_embeddings")


def _snapshot(url: str) -> dict[str, object]:
    """Row counts plus the identity of every row that a re-run must leave alone."""
    with psycopg.connect(url) as conn:
        counts = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
        transcript_ids = conn.execute(
            "SELECT array_agg(transcript_id ORDER BY transcript_id) FROM transcripts"
        )
        segment_ids = conn.execute("SELECT array_agg(segment_id ORDER BY segment_id) FROM segments")
        return {
            **counts,
            "transcript_ids": transcript_ids.fetchone()[0],
            "segment_ids": segment_ids.fetchone()[0],
        }


def _sessions_ended(url: str) -> int:
    """Connections to the database that have ended so far (the server counts one at its end)."""
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(
            "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()[0]


def _ingest(library: Path, days: list[date], dagster_url: str, home: Path) -> list[dg.AssetCheckEvaluation]:
    source = video_source_config(settings(), library_dir=str(library))
    # Entered: Dagster resolves definitions-state storage through the current instance.
    with kept_connections_instance(dagster_url, home) as instance:
        report = ingest_days(
            days, instance=instance, run_config={"resources": {"video_source": {"config": source}}}
        )
    assert not report.failed, f"runs failed for {report.failed}"
    return report.check_evaluations


@pytest.fixture(scope="module")
def dev_library() -> Path:
    return shared_path("eval", "huberman_dev", "library")


@pytest.fixture(scope="module")
def ingested_dev_library(
    embedded_admin_url: str, dev_library: Path, tmp_path_factory: pytest.TempPathFactory
):
    """The 211-video dev library ingested once, end to end, for the tests of this module; Dagster's
    runs and events in their own database, as in production."""
    url = _fresh_database(embedded_admin_url, "devlib")
    dagster = {"dagster_url": _fresh_database(embedded_admin_url, "devlib_dagster"),
               "home": tmp_path_factory.mktemp("dagster_home")}  # fmt: skip
    previous = os.environ.get("DATABASE_URL")
    os.environ["DATABASE_URL"] = url
    days = sorted(LibrarySource(dev_library).publish_dates())
    checks = _ingest(dev_library, days, **dagster)
    yield {"url": url, "days": days, "checks": checks, "sessions": _sessions_ended(url), "dagster": dagster}
    if previous is None:
        os.environ.pop("DATABASE_URL", None)
    else:
        os.environ["DATABASE_URL"] = previous


pytestmark = pytest.mark.slow


def test_every_library_video_gets_exactly_one_current_transcript(ingested_dev_library, dev_library):
    expected = {
        v.video_id
        for d in ingested_dev_library["days"]
        for v in LibrarySource(dev_library).videos_published_on(d)
    }
    with psycopg.connect(ingested_dev_library["url"]) as conn:
        rows = conn.execute("SELECT video_id, source, version FROM transcripts WHERE is_current").fetchall()
        attempts = conn.execute("SELECT count(*) FROM transcript_attempts").fetchone()[0]
    assert len(expected) == 211
    assert {r[0] for r in rows} == expected
    assert len(rows) == 211
    assert {r[1] for r in rows} == {"library_file"}
    assert attempts == 0
    assert any(video_id.startswith("-") for video_id in expected)


def test_every_video_has_segments_and_every_segment_an_embedding(ingested_dev_library):
    with psycopg.connect(ingested_dev_library["url"]) as conn:
        without_segments = conn.execute(
            "SELECT count(*) FROM videos v WHERE NOT EXISTS (SELECT 1 FROM segments s WHERE s.video_id = v.video_id)"
        ).fetchone()[0]
        unembedded = conn.execute(
            """SELECT count(*) FROM segments s WHERE NOT EXISTS
               (SELECT 1 FROM segment_embeddings e WHERE e.segment_id = s.segment_id AND e.model = %s)""",
            (DEFAULT_EMBEDDING_MODEL,),
        ).fetchone()[0]
        dims = conn.execute("SELECT DISTINCT vector_dims(embedding) FROM segment_embeddings").fetchall()
    assert without_segments == 0
    assert unembedded == 0
    assert dims == [(384,)]


def test_no_embedded_text_is_longer_than_the_model_reads(ingested_dev_library):
    """What is embedded is the segment's own words (with the model's passage prompt, none for
    MiniLM): every one fits the 256 pieces the model reads, counted by its own tokenizer."""
    from transformers import AutoTokenizer

    embedder = Embedder()
    tokenizer = AutoTokenizer.from_pretrained(str(default_model_path()))
    with psycopg.connect(ingested_dev_library["url"]) as conn:
        texts = [row[0] for row in conn.execute("SELECT text FROM segments")]
    prompt = embedder.prompts["passage"]
    longest = max(len(ids) for ids in tokenizer([prompt + t for t in texts], truncation=False)["input_ids"])
    assert longest <= embedder.max_seq_length == 256


def test_every_asset_check_passed(ingested_dev_library):
    evaluations = ingested_dev_library["checks"]
    names = {e.check_name for e in evaluations}
    assert {
        "transcripts_every_video_accounted_check",
        "transcripts_coverage_check",
        "segments_no_duplicates_check",
        "segment_embeddings_complete_check",
    } <= names
    failed = [(e.check_name, e.metadata) for e in evaluations if not e.passed]
    assert failed == []


def test_the_runs_steps_share_kept_warehouse_connections(ingested_dev_library):
    """Each asset step of the ingest's runs (45 for the dev library) used to open and close its own
    connections to the warehouse, a server process started and ended each time: 452 for the 75 runs
    of an earlier grouping."""
    assert ingested_dev_library["sessions"] <= 10, f"{ingested_dev_library['sessions']} connections"


def test_rematerialising_the_same_partitions_changes_no_row(ingested_dev_library, dev_library):
    # Every fourth publish day, spread over the library's whole span (50 of 198 days): a re-run takes
    # the same path for every day, and the snapshot is of whole tables, so a duplicated or rewritten
    # row anywhere shows; the ingest above is not paid twice (test_failure_drills re-runs single
    # partitions in detail).
    days = ingested_dev_library["days"][::4]
    assert len(days) >= 50
    before = _snapshot(ingested_dev_library["url"])
    _ingest(dev_library, days, **ingested_dev_library["dagster"])
    assert _snapshot(ingested_dev_library["url"]) == before


def test_a_second_model_embeds_beside_the_first_and_both_are_searchable(ingested_dev_library, tmp_path):
    # The same MiniLM files under another name stand in for a second model (no model hub here).
    second = tmp_path / "minilm-second"
    shutil.copytree(default_model_path(), second)
    second_embedder = Embedder(str(second))
    url = ingested_dev_library["url"]
    with psycopg.connect(url) as conn:
        some_videos = [r[0] for r in conn.execute("SELECT video_id FROM videos ORDER BY video_id LIMIT 5")]
        first_count = conn.execute(
            "SELECT count(*) FROM segment_embeddings WHERE model = %s", (DEFAULT_EMBEDDING_MODEL,)
        ).fetchone()[0]
    from chaffee_assets.warehouse import connect

    with connect(url) as conn:
        report = embed_missing(conn, some_videos, second_embedder)
        assert report.model == "minilm-second" and report.segments_embedded > 0
        second_hits = search(
            "sleep",
            k=5,
            conn=conn,
            embedder=second_embedder,
            model=second_embedder.model_name,
            video_ids=some_videos,
        )
        first_hits = search("sleep", k=5, conn=conn, embedder=Embedder(), model=DEFAULT_EMBEDDING_MODEL)
        still = conn.execute(
            "SELECT count(*) FROM segment_embeddings WHERE model = %s", (DEFAULT_EMBEDDING_MODEL,)
        ).fetchone()[0]
        indexes = [
            r[0] for r in conn.execute("SELECT indexname FROM pg_indexes WHERE indexdef LIKE '%%hnsw%%'")
        ]
    assert second_hits and {h.video_id for h in second_hits} <= set(some_videos)
    assert first_hits
    assert still == first_count
    assert len(indexes) == 2  # each model has its own HNSW index


def _write_library_video(
    folder: Path, video_id: str, upload_date: str, caption: tuple[str, str] | None
) -> None:
    info = {"id": video_id, "title": f"Video {video_id}", "upload_date": upload_date, "duration": 30,
            "webpage_url": f"https://www.youtube.com/watch?v={video_id}", "_type": "video"}  # fmt: skip
    (folder / f"{video_id}.info.json").write_text(json.dumps(info))
    if caption:
        (folder / f"{video_id}.en.{caption[0]}").write_text(caption[1])


GOOD_VTT = "WEBVTT\n\n00:00:01.000 --> 00:00:04.000\nMeat is the most nutrient dense food.\n\n" \
    "00:00:04.000 --> 00:00:09.000\nLDL is not the villain it was made out to be.\n"  # fmt: skip


def test_a_library_with_broken_files_ingests_the_good_videos_and_records_the_bad(tmp_path, warehouse_url):
    library = tmp_path / "library"
    library.mkdir()
    _write_library_video(library, "good1234567", "20240305", ("vtt", GOOD_VTT))
    _write_library_video(
        library, "-good765432", "20240305", ("srt", "1\n00:00:01,000 --> 00:00:03,000\nHello there\n")
    )
    _write_library_video(
        library, "garbage0001", "20240305", ("vtt", "WEBVTT\n\n\x00\x01 not a cue at all --> ???\n")
    )
    _write_library_video(
        library, "truncjson01", "20240305", ("json", '[{"text": "hello", "start": 1.0, "dur')
    )
    _write_library_video(library, "nocaptions1", "20240305", None)
    (library / "brokeninfo1.info.json").write_text('{"id": "brokeninfo1", "title": ')
    (library / "brokeninfo1.en.vtt").write_text(GOOD_VTT)

    resources = build_resources(video_source=VideoSourceResource(library_dir=str(library)))
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            INGEST_ASSETS[:2],
            resources=resources,
            partition_key="2024-03-05",
            instance=instance,
        )
    assert result.success
    with psycopg.connect(warehouse_url) as conn:
        transcribed = {r[0] for r in conn.execute("SELECT video_id FROM transcripts WHERE is_current")}
        failures = {
            r[0]: (r[1], r[2])
            for r in conn.execute("SELECT video_id, failure_class, message FROM transcript_attempts")
        }
    assert transcribed == {"good1234567", "-good765432"}
    assert failures["garbage0001"][0] == "error" and "garbage0001.en.vtt" in failures["garbage0001"][1]
    assert failures["truncjson01"][0] == "error" and "truncjson01.en.json" in failures["truncjson01"][1]
    # No captions: eligible for speech recognition, which finds no audio in the library.
    assert failures["nocaptions1"][0] in ("no_captions", "unavailable", "engine_unavailable")
    assert (
        "brokeninfo1" not in failures and "brokeninfo1" not in transcribed
    )  # skipped at listing, reported there
    skipped = LibrarySource(library).skipped()
    assert [s.video_id for s in skipped] == ["brokeninfo1"]
    videos_metadata = result.asset_materializations_for_node("videos")[0].metadata
    assert "brokeninfo1.info.json" in videos_metadata["skipped_library_entries"].value
    transcripts_metadata = result.asset_materializations_for_node("transcripts")[0].metadata
    assert transcripts_metadata["failed"].value == 3
    assert transcripts_metadata["written"].value == 2


def test_on_the_dev_questions_hybrid_beats_both_single_modes_and_clears_a_floor(ingested_dev_library):
    """Measured through the same path users take: Dagster-ingested library, the search SQL function."""
    from chaffee_assets.cli.eval_cmd import evaluate_modes
    from chaffee_assets.retrieval.evaluation import load_questions
    from chaffee_assets.warehouse import connect

    questions = load_questions(shared_path("eval", "huberman_dev", "questions.jsonl"))
    with connect(ingested_dev_library["url"], autocommit=True) as conn:
        results = evaluate_modes(conn, questions, ("hybrid", "vector", "text"), model=DEFAULT_EMBEDDING_MODEL)
    print(json.dumps(results))
    hybrid, vector, text = results["hybrid"], results["vector"], results["text"]
    for metric in ("recall@5", "mrr@10"):
        assert hybrid[metric] > vector[metric] and hybrid[metric] > text[metric], results
    # The straightforward 60 s / 45 s baseline scores 0.969 / 0.911; a floor below it catches a
    # regression without pinning exact figures.
    assert hybrid["recall@5"] >= 0.95 and hybrid["mrr@10"] >= 0.88, results
