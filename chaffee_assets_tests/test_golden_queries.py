"""The golden-queries check checks the library at hand, or is skipped and says why; it never passes on nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from chaffee_assets.definitions import INGEST_ASSETS, build_resources
from chaffee_assets.defs.resources import VideoSourceResource
from chaffee_assets.golden_queries import GoldenQueriesError, golden_queries_path, load_golden_queries
from chaffee_assets.settings import Settings

from .conftest import _fresh_database

DAY = "2024-05-06"
GOLDEN = "segment_embeddings_golden_queries_check"
# Twelve talks on unrelated subjects, one day: a question about one finds that one first.
TOPICS = {
    "astroTalk01": "The telescope showed a spiral galaxy and a nebula where new stars are born in orbit.",
    "breadTalk01": "Sourdough bread needs a lively starter, flour, water, salt and a long cold proof.",
    "chessTalk01": "In chess the queen's gambit offers a pawn to control the centre of the board.",
    "surfTalk001": "Surfers read the swell and paddle out past the breaking waves on their boards.",
    "beesTalk001": "Honey bees dance to tell the hive where the flowers with nectar are.",
    "trainTalk01": "The steam locomotive pulled forty freight wagons over the mountain railway.",
    "violinTalk1": "A violin's sound comes from the bow drawing across four strings tuned in fifths.",
    "taxTalk0001": "File your income tax return before April and keep the receipts for deductions.",
    "meatTalk001": "Red meat is the most nutrient dense food, rich in protein, iron and vitamin B12.",
    "rainTalk001": "Tropical rainforests hold half of the species on earth under a dense canopy.",
    "codeTalk001": "A compiler turns source code into machine instructions the processor executes.",
    "knotTalk001": "Sailors tie a bowline knot to make a fixed loop at the end of a rope.",
}


def _library(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for video_id, sentence in TOPICS.items():
        info = {"id": video_id, "title": f"A talk ({video_id})", "upload_date": DAY.replace("-", ""),
                "duration": 12, "webpage_url": f"https://www.youtube.com/watch?v={video_id}"}  # fmt: skip
        (folder / f"{video_id}.info.json").write_text(json.dumps(info))
        (folder / f"{video_id}.en.vtt").write_text(f"WEBVTT\n\n00:00:01.000 --> 00:00:11.000\n{sentence}\n")
    return folder


def _golden_file(path: Path, entries: list[dict]) -> Path:
    path.write_text("".join(json.dumps(entry) + "\n" for entry in entries))
    return path


def _materialize(library: Path, url: str, monkeypatch: pytest.MonkeyPatch, golden: Path | None = None):
    monkeypatch.setenv("DATABASE_URL", url)
    if golden:
        monkeypatch.setenv("CHAFFEE_GOLDEN_QUERIES", str(golden))
    else:
        monkeypatch.delenv("CHAFFEE_GOLDEN_QUERIES", raising=False)
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            INGEST_ASSETS,
            resources=build_resources(video_source=VideoSourceResource(library_dir=str(library))),
            instance=instance,
            partition_key=DAY,
        )
    assert result.success
    return result


def _golden_evaluations(result) -> list[dg.AssetCheckEvaluation]:
    return [e for e in result.get_asset_check_evaluations() if e.check_name == GOLDEN]


def test_without_a_golden_queries_file_the_check_is_skipped_and_says_why(
    tmp_path, embedded_admin_url, monkeypatch
):
    result = _materialize(_library(tmp_path / "lib"), _fresh_database(embedded_admin_url, "gq"), monkeypatch)
    assert _golden_evaluations(result) == []  # skipped: no result at all, never a pass
    (embeddings,) = result.asset_materializations_for_node("segment_embeddings")
    note = embeddings.metadata["golden_queries"].value
    assert note.startswith("not evaluated: no golden-queries file") and "CHAFFEE_GOLDEN_QUERIES" in note


def test_a_library_s_own_golden_file_is_checked_and_a_wrong_answer_fails(
    tmp_path, embedded_admin_url, monkeypatch
):
    library = _library(tmp_path / "lib")
    _golden_file(
        library / "golden_queries.jsonl",
        [
            {"question": "how do bees tell each other where the flowers are", "video_id": "beesTalk001"},
            {
                "question": "what knot makes a fixed loop in a rope",
                "video_id": "knotTalk001",
                "start_s": 1.0,
                "end_s": 11.0,
            },  # fmt: skip
        ],
    )
    result = _materialize(library, _fresh_database(embedded_admin_url, "gq"), monkeypatch)
    (evaluation,) = _golden_evaluations(result)
    assert evaluation.passed and evaluation.partition == DAY
    assert evaluation.metadata["questions"].value == 2 and evaluation.metadata["moment_found"].value == 1

    # The operator's file says the galaxy question is answered by the bread talk: the check must fail.
    wrong = _golden_file(
        tmp_path / "mine.jsonl",
        [{"question": "what did the telescope show about the spiral galaxy", "video_id": "breadTalk01"}],
    )
    result = _materialize(library, _fresh_database(embedded_admin_url, "gq"), monkeypatch, golden=wrong)
    (evaluation,) = _golden_evaluations(result)
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN
    assert "breadTalk01" in evaluation.metadata["missed"].value


def test_the_setting_wins_over_the_library_s_file_and_a_channel_has_none(tmp_path):
    library = _library(tmp_path / "lib")
    own = _golden_file(library / "golden_queries.jsonl", [{"question": "q", "video_id": "beesTalk001"}])
    assert golden_queries_path(Settings.from_env({}), library) == own
    assert golden_queries_path(Settings.from_env({}), None) is None
    mine = tmp_path / "mine.jsonl"
    assert golden_queries_path(Settings.from_env({"CHAFFEE_GOLDEN_QUERIES": str(mine)}), library) == mine


@pytest.mark.parametrize(
    ("line", "complaint"),
    [
        ('{"question": "why", "video_id": ', "line 2"),
        ('{"question": "", "video_id": "x"}', '"question" is missing or empty'),
        ('{"question": "why", "video_id": "x", "start_s": "ten"}', '"start_s" is not a number'),
        ('["why", "x"]', "not a JSON object"),
    ],
)
def test_a_malformed_golden_file_is_named_with_its_line(tmp_path, line, complaint):
    path = tmp_path / "golden.jsonl"
    path.write_text('{"question": "fine", "video_id": "abc"}\n' + line + "\n")
    with pytest.raises(GoldenQueriesError) as error:
        load_golden_queries(path)
    assert str(path) in str(error.value) and complaint in str(error.value)


def test_chaffee_ingest_refuses_a_malformed_golden_file_in_one_line(tmp_path, chaffee_home):
    bad = tmp_path / "golden.jsonl"
    bad.write_text("not json\n")
    env = {**os.environ, "CHAFFEE_GOLDEN_QUERIES": str(bad)}
    chaffee = str(Path(sys.executable).parent / "chaffee")
    result = subprocess.run(
        [chaffee, "ingest", "--library", str(_library(tmp_path / "lib"))],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.startswith("error: golden-queries file") and f"{bad} line 1" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
