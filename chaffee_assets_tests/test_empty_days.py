"""Days without videos count as done in Dagster: runless materialisations, written in batches."""

from __future__ import annotations

import time
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import pytest

from chaffee_assets.definitions import INGEST_ASSETS
from chaffee_assets.ingest_runner import EMPTY_DAY_METADATA_KEY, calendar_days, mark_empty_days
from chaffee_assets_tests.conftest import _fresh_database
from chaffee_assets_tests.dagster_instances import kept_connections_instance

ASSET_KEYS = [asset.key for asset in INGEST_ASSETS]
YEAR = [date(2016, 1, 1) + timedelta(days=offset) for offset in range(366)]


@pytest.fixture
def instance(embedded_admin_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "100")  # as the `chaffee` command sets it
    instance = kept_connections_instance(_fresh_database(embedded_admin_url, "empty_days"), tmp_path)
    yield instance
    instance.dispose()


def test_a_year_of_empty_days_is_materialised_for_every_asset_in_batches(
    instance: dg.DagsterInstance,
) -> None:
    with_videos = {date(2016, 3, 1), date(2016, 7, 4)}
    run_day = date(2016, 5, 5)  # empty, but a run already materialised it: left as it is
    instance.report_runless_asset_event(dg.AssetMaterialization(ASSET_KEYS[0], partition=run_day.isoformat()))
    empty = [day for day in YEAR if day not in with_videos]

    started = time.monotonic()
    written = mark_empty_days(instance, ASSET_KEYS, empty, "library")
    batched_s = time.monotonic() - started

    assert written == len(ASSET_KEYS) * len(empty) - 1
    for key in ASSET_KEYS:
        done = instance.get_materialized_partitions(key)
        assert done >= {day.isoformat() for day in empty}
        assert not done & {day.isoformat() for day in with_videos}
        # Each asset's latest materialisation is its own last day, whatever the batch boundaries.
        latest = instance.get_latest_materialization_event(key)
        assert latest.asset_materialization.partition == empty[-1].isoformat()
    [record] = instance.fetch_materializations(
        dg.AssetRecordsFilter(ASSET_KEYS[3], asset_partitions=["2016-01-01"]), limit=1
    ).records
    metadata = record.asset_materialization.metadata
    assert metadata[EMPTY_DAY_METADATA_KEY].value is True and metadata["video_count"].value == 0
    assert record.asset_materialization.description == "no video published this day (library)"
    assert record.run_id == ""  # runless: no run per day

    # Again: every day is done, nothing is written.
    assert mark_empty_days(instance, ASSET_KEYS, empty, "library") == 0
    # One event at a time for a month, for scale: the batches must be much cheaper per event.
    month = [date(2017, 1, 1) + timedelta(days=offset) for offset in range(31)]
    started = time.monotonic()
    for key in ASSET_KEYS:
        for day in month:
            instance.report_runless_asset_event(dg.AssetMaterialization(key, partition=day.isoformat()))
    single_per_event = (time.monotonic() - started) / (len(ASSET_KEYS) * len(month))
    assert batched_s / written < single_per_event / 2, (batched_s / written, single_per_event)


def test_the_calendar_days_of_a_range_stay_inside_the_partition_calendar() -> None:
    days = calendar_days(None, date(2015, 1, 3))
    assert days == [date(2015, 1, 1), date(2015, 1, 2), date(2015, 1, 3)]
    assert calendar_days(date(2014, 12, 30), date(2015, 1, 1)) == [date(2015, 1, 1)]
    assert calendar_days(date(2020, 1, 2), date(2020, 1, 1)) == []
