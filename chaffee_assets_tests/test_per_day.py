"""A run that covers several days records each day's own figures and check results, in plain words.

One run of the four assets over 2024-03-04 … 2024-03-06 (a backfill groups days like this): a video on
the 4th, none on the 5th, one on the 6th whose captions cover a fifth of it.
"""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from chaffee_assets.definitions import INGEST_ASSETS, build_resources
from chaffee_assets.defs.resources import VideoSourceResource

FIRST, EMPTY, LAST = "2024-03-04", "2024-03-05", "2024-03-06"
VTT = (
    "WEBVTT\n\n00:00:01.000 --> 00:00:05.000\nMeat is the most nutrient dense food there is.\n\n"
    "00:00:05.000 --> 00:00:10.000\nLDL is not the villain it was made out to be.\n"
)


def _video(folder: Path, video_id: str, upload_date: str, duration: int) -> None:
    info = {"id": video_id, "title": f"Talk {video_id}", "upload_date": upload_date, "duration": duration,
            "webpage_url": f"https://www.youtube.com/watch?v={video_id}", "_type": "video"}  # fmt: skip
    (folder / f"{video_id}.info.json").write_text(json.dumps(info))
    (folder / f"{video_id}.en.vtt").write_text(VTT)


@pytest.fixture(scope="module")
def three_day_run(tmp_path_factory, embedded_admin_url):
    from .conftest import _fresh_database

    library = tmp_path_factory.mktemp("three_days")
    _video(library, "dayOneVid01", FIRST.replace("-", ""), duration=11)
    _video(library, "dayThreeV01", LAST.replace("-", ""), duration=50)  # captions cover 10 of 50 s
    url = _fresh_database(embedded_admin_url, "perday")
    with pytest.MonkeyPatch.context() as patch, dg.instance_for_test() as instance:
        patch.setenv("DATABASE_URL", url)
        result = dg.materialize(
            INGEST_ASSETS,
            resources=build_resources(video_source=VideoSourceResource(library_dir=str(library))),
            instance=instance,
            tags={"dagster/asset_partition_range_start": FIRST, "dagster/asset_partition_range_end": LAST},
        )
        assert result.success
        yield result


def _day_metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, dict[str, object]]:
    return {
        m.partition: {key: value.value for key, value in m.metadata.items()}
        for m in result.asset_materializations_for_node(asset)
    }


def test_every_day_of_the_run_shows_its_own_video_count(three_day_run):
    for asset in ("videos", "transcripts"):
        counts = {day: meta["video_count"] for day, meta in _day_metadata(three_day_run, asset).items()}
        assert counts == {FIRST: 1, EMPTY: 0, LAST: 1}, asset
    written = {day: meta["written"] for day, meta in _day_metadata(three_day_run, "transcripts").items()}
    assert written == {FIRST: 1, EMPTY: 0, LAST: 1}


def test_a_day_without_videos_has_no_segments_or_embeddings_of_its_own(three_day_run):
    segments = _day_metadata(three_day_run, "segments")
    embeddings = _day_metadata(three_day_run, "segment_embeddings")
    assert segments[EMPTY]["segment_count"] == 0 and segments[FIRST]["segment_count"] > 0
    assert embeddings[EMPTY]["segments_embedded"] == 0
    assert embeddings[LAST]["segments_embedded"] == segments[LAST]["segment_count"]


def test_check_results_are_recorded_on_their_day(three_day_run):
    evaluations = three_day_run.get_asset_check_evaluations()
    by_day = {(e.check_name, e.partition) for e in evaluations}
    assert ("transcripts_every_video_accounted_check", FIRST) in by_day
    assert ("transcripts_every_video_accounted_check", LAST) in by_day
    assert ("segment_embeddings_complete_check", LAST) in by_day
    # The day without videos has nothing to check; only the spend check belongs to no day.
    assert {e.partition for e in evaluations} == {FIRST, LAST, None}
    assert {e.check_name for e in evaluations if e.partition is None} == {
        "transcripts_spend_within_budget_check"
    }


def test_a_failing_check_fails_on_the_day_it_is_about(three_day_run):
    coverage = {
        e.partition: e.passed
        for e in three_day_run.get_asset_check_evaluations()
        if e.check_name == "transcripts_coverage_check"
    }
    assert coverage == {FIRST: True, LAST: False}


def test_check_metadata_holds_no_raw_markdown(three_day_run):
    for evaluation in three_day_run.get_asset_check_evaluations():
        for key, value in evaluation.metadata.items():
            if isinstance(value, dg.TextMetadataValue):
                text = value.value
                assert "_none_" not in text and not text.startswith(("- ", "|")), (evaluation.check_name, key)
    flagged = next(
        e
        for e in three_day_run.get_asset_check_evaluations()
        if e.check_name == "transcripts_coverage_check" and not e.passed
    )
    assert isinstance(flagged.metadata["details"], dg.MarkdownMetadataValue)
    assert "dayThreeV01" in flagged.metadata["details"].value
