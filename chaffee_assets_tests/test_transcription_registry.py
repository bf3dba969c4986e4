"""The registry of transcript sources: the one place the policy, store, checks, warehouse and CLI read."""

from __future__ import annotations

import dataclasses
from datetime import date

import psycopg
import pytest

from chaffee_assets.defs.ingest_assets import transcripts
from chaffee_assets.defs.transcription_resources import transcription_resources_from_env
from chaffee_assets.ingest import store
from chaffee_assets.transcription import registry
from chaffee_assets.transcription.policy import choose_engine
from chaffee_assets.warehouse.migrate import upgrade


def _table(url: str) -> dict[str, tuple[int, bool]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT source, rank, speech_recognition FROM transcript_sources").fetchall()
    return {source: (rank, asr) for source, rank, asr in rows}


def test_the_warehouse_knows_exactly_the_registry_sources(warehouse_url: str) -> None:
    assert _table(warehouse_url) == {s.name: (s.rank, s.speech_recognition) for s in registry.SOURCES}


def test_a_transcript_from_a_source_the_registry_does_not_know_is_refused(warehouse_url: str) -> None:
    with psycopg.connect(warehouse_url) as conn:
        conn.execute("INSERT INTO videos (video_id, source, title, url) VALUES ('v1', 'library', 't', 'u')")
        with pytest.raises(psycopg.errors.ForeignKeyViolation, match="transcript_sources"):
            conn.execute(
                "INSERT INTO transcripts (video_id, version, source, cues) VALUES ('v1', 1, 'gpu_magic', '[]')"
            )


def test_a_new_registry_entry_reaches_the_warehouse_on_the_next_upgrade(
    warehouse_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    new = registry.TranscriptSource("human_transcriber", 6, False, "a transcript typed by a person")
    monkeypatch.setattr(registry, "SOURCES", (*registry.SOURCES, new))
    upgrade(warehouse_url)
    assert _table(warehouse_url)["human_transcriber"] == (6, False)
    with psycopg.connect(warehouse_url) as conn:
        conn.execute("INSERT INTO videos (video_id, source, title, url) VALUES ('v1', 'library', 't', 'u')")
        conn.execute(
            "INSERT INTO transcripts (video_id, version, source, cues) VALUES ('v1', 1, 'human_transcriber', '[]')"
        )


def test_ranks_decide_which_transcript_replaces_which() -> None:
    current = store.CurrentTranscript(1, 1, registry.AUTO_CAPTIONS, 10)
    assert store.is_improvement(registry.LOCAL_WHISPER, current)
    assert not store.is_improvement(registry.AUTO_CAPTIONS, current)
    assert not store.is_improvement(
        registry.LIBRARY_FILE, dataclasses.replace(current, source=registry.MANUAL_CAPTIONS)
    )


def test_every_engine_has_a_bound_resource_the_transcripts_asset_requires() -> None:
    resources = transcription_resources_from_env()
    for engine in registry.engines():
        resource = resources[engine.resource_key]
        assert isinstance(resource, engine.resource_class())
        assert callable(resource.transcriber)
        assert engine.resource_key in transcripts.required_resource_keys


def test_spellings_and_prices_come_from_the_registry() -> None:
    assert registry.normalise_engine(" Local ") == registry.LOCAL_WHISPER
    assert set(registry.engine_spellings()) == {"local_whisper", "openai", "local"}
    assert [e.name for e in registry.engines() if e.paid] == [registry.OPENAI]
    assert registry.caption_sources() == ("manual_captions", "library_file", "auto_captions")
    with pytest.raises(ValueError, match="unknown speech-recognition engine 'manual_captions'"):
        registry.normalise_engine("manual_captions")  # a caption source is not an engine
    assert choose_engine(date(2020, 1, 1), date(2025, 1, 1)) == registry.BACK_CATALOGUE_ENGINE
