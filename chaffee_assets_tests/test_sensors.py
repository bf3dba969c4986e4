"""The channel feed sensor on a feed document: capped first tick, one run per new video's day, and a
failed fetch that skips without losing the cursor."""

import json
import os
import subprocess
import sys
import urllib.error
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from chaffee_assets.definitions import defs
from chaffee_assets.defs.resources import VideoSourceResource
from chaffee_assets.defs.schedules import REASON_TAG, ingest_job
from chaffee_assets.defs.sensors import (
    MAX_SEEN_IDS,
    VIDEO_IDS_TAG,
    build_channel_feed_sensor,
    channel_feed_sensor,
    plan_feed_runs,
)
from chaffee_assets.ingest.youtube import parse_channel_feed

# No recorded feed exists in ../shared: the document comes from the YouTube source's tests, which
# write it in the published Atom shape of /feeds/videos.xml?channel_id=… (yt:videoId, yt:channelId,
# title, published, updated, media:group).
from chaffee_assets_tests.test_readme_commands import small_library
from chaffee_assets_tests.test_youtube_source import CHANNEL_ID
from chaffee_assets_tests.test_youtube_source import _feed as feed_document

NOW = datetime(2025, 9, 22, 12, 0, tzinfo=UTC)

# Newest first, as YouTube serves it: two videos on the 21st, then the 20th, the 18th, the 15th.
FEED = [
    ("Qx3kS9vT2aB", "Ep. 210 with a guest", "2025-09-21T19:30:00+00:00"),
    ("-pYI_37Xli4", "Carnivore &amp; You", "2025-09-21T08:00:06+00:00"),
    ("Lm8_Zp0qRt1", "Q&amp;A live replay", "2025-09-20T23:59:59+00:00"),
    ("Ab12Cd34Ef5", "Short answer", "2025-09-18T14:00:00+00:00"),
    ("Zz9Yy8Xx7Ww", "Older talk", "2025-09-15T10:00:00+00:00"),
]


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as test_instance:
        yield test_instance


def _tick(
    sensor: dg.SensorDefinition,
    instance: dg.DagsterInstance,
    cursor: str | None,
    source: VideoSourceResource | None = None,
):
    context = dg.build_sensor_context(
        cursor=cursor,
        instance=instance,
        resources={"video_source": source or VideoSourceResource(channel_id=CHANNEL_ID)},
        definitions=defs,  # resolves partition keys against the code location
    )
    return sensor.evaluate_tick(context)


def _serving(*documents: bytes | Exception):
    """A feed fetch that answers each call with the next document (or raises the next error)."""
    answers = list(documents)
    calls: list[tuple[str, str | None]] = []

    def fetch(channel_id: str, proxy: str | None) -> bytes:
        calls.append((channel_id, proxy))
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    fetch.calls = calls  # type: ignore[attr-defined]
    return fetch


def _sensor(*documents: bytes | Exception) -> dg.SensorDefinition:
    return build_channel_feed_sensor(fetch=_serving(*documents), clock=lambda: NOW)


def test_the_sensor_is_on_by_default_every_fifteen_minutes_for_the_ingest_job() -> None:
    assert channel_feed_sensor.default_status is dg.DefaultSensorStatus.RUNNING
    assert channel_feed_sensor.minimum_interval_seconds == 15 * 60
    assert channel_feed_sensor.job_name == ingest_job.name


def test_the_first_tick_runs_only_the_newest_two_days_and_remembers_every_video(
    instance: dg.DagsterInstance,
) -> None:
    data = _tick(_sensor(feed_document(FEED)), instance, cursor=None)
    assert [
        (r.partition_key, r.run_key, r.tags[REASON_TAG], r.tags[VIDEO_IDS_TAG]) for r in data.run_requests
    ] == [
        ("2025-09-20", "feed:2025-09-20:Lm8_Zp0qRt1", "feed:first_tick", "Lm8_Zp0qRt1"),
        (
            "2025-09-21",
            "feed:2025-09-21:-pYI_37Xli4+Qx3kS9vT2aB",
            "feed:first_tick",
            "Qx3kS9vT2aB -pYI_37Xli4",
        ),
    ]
    assert json.loads(data.cursor) == [vid for vid, _, _ in FEED]


def test_the_first_tick_cap_is_configurable(
    instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHAFFEE_FEED_FIRST_TICK_DAYS", "3")
    data = _tick(_sensor(feed_document(FEED)), instance, cursor=None)
    assert [r.partition_key for r in data.run_requests] == ["2025-09-18", "2025-09-20", "2025-09-21"]


def test_a_new_entry_runs_exactly_its_publish_day(instance: dg.DagsterInstance) -> None:
    new = ("N3wVide0_01", "Published this morning", "2025-09-22T05:10:00+00:00")
    sensor = _sensor(feed_document(FEED), feed_document([new, *FEED[:-1]]))  # the oldest drops out
    first = _tick(sensor, instance, cursor=None)
    second = _tick(sensor, instance, cursor=first.cursor)
    assert [(r.partition_key, r.run_key, r.tags[REASON_TAG]) for r in second.run_requests] == [
        ("2025-09-22", "feed:2025-09-22:N3wVide0_01", "feed:new")
    ]
    assert json.loads(second.cursor) == ["N3wVide0_01", *(vid for vid, _, _ in FEED)]


def test_a_seen_video_is_not_requested_again_even_while_it_waits_for_captions(
    instance: dg.DagsterInstance,
) -> None:
    # A video still `too_new` after its first run is the daily schedule's retry plan's to re-run.
    sensor = _sensor(feed_document(FEED), feed_document(FEED))
    first = _tick(sensor, instance, cursor=None)
    second = _tick(sensor, instance, cursor=first.cursor)
    assert second.run_requests == []
    assert "no new videos among 5 feed entries" in second.skip_message
    assert json.loads(second.cursor) == json.loads(first.cursor)


def test_a_second_video_on_an_already_run_day_gets_its_own_run(instance: dg.DagsterInstance) -> None:
    later = ("SameDay0002", "Second upload of the 21st", "2025-09-21T21:00:00+00:00")
    sensor = _sensor(feed_document(FEED), feed_document([later, *FEED]))
    first = _tick(sensor, instance, cursor=None)
    second = _tick(sensor, instance, cursor=first.cursor)
    assert [(r.partition_key, r.run_key) for r in second.run_requests] == [
        ("2025-09-21", "feed:2025-09-21:SameDay0002")
    ]


@pytest.mark.parametrize(
    "failure",
    [
        urllib.error.URLError("[Errno -3] Temporary failure in name resolution"),
        TimeoutError("The read operation timed out"),
        b"<html><body>Sorry, something went wrong</body>",  # an error page instead of the feed
    ],
    ids=["dns", "timeout", "html-page"],
)
def test_a_feed_that_cannot_be_read_skips_and_keeps_the_cursor(
    instance: dg.DagsterInstance, failure: Exception | bytes
) -> None:
    cursor = json.dumps([vid for vid, _, _ in FEED])
    data = _tick(_sensor(failure), instance, cursor=cursor)
    assert data.run_requests == []
    assert data.skip_message.startswith("channel feed unavailable")
    assert data.cursor == cursor


def test_the_real_fetch_failing_on_the_network_is_a_skip_not_a_crash(instance: dg.DagsterInstance) -> None:
    # A proxy on a closed local port: urllib fails at once, as it would with no route to YouTube.
    source = VideoSourceResource(channel_id=CHANNEL_ID, proxy="http://127.0.0.1:1")
    data = _tick(channel_feed_sensor, instance, cursor=None, source=source)
    assert data.run_requests == []
    assert data.skip_message.startswith("channel feed unavailable")
    assert data.cursor is None


def test_the_fetch_is_asked_for_the_configured_channel_through_its_proxy(
    instance: dg.DagsterInstance,
) -> None:
    fetch = _serving(feed_document(FEED))
    sensor = build_channel_feed_sensor(fetch=fetch, clock=lambda: NOW)
    _tick(
        sensor,
        instance,
        cursor=None,
        source=VideoSourceResource(channel_id="UCother", proxy="http://proxy:3128"),
    )
    assert fetch.calls == [("UCother", "http://proxy:3128")]  # type: ignore[attr-defined]


def test_with_a_library_folder_the_sensor_watches_the_folder_not_the_feed(
    instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    fetch = _serving()
    sensor = build_channel_feed_sensor(fetch=fetch, clock=lambda: NOW)
    library = tmp_path / "library"
    source = VideoSourceResource(library_dir=str(library))

    missing = _tick(sensor, instance, cursor=None, source=source)
    assert missing.skip_message == f"the library folder {library} does not exist (CHAFFEE_LIBRARY_DIR)"

    small_library(library, "smplMeatDay")
    first = _tick(sensor, instance, cursor=None, source=source)
    assert not first.run_requests
    assert first.skip_message.startswith(f"first look at the library {library}: 1 video(s) recorded as seen")
    quiet = _tick(sensor, instance, cursor=first.cursor, source=source)
    assert quiet.skip_message == f"no new videos in the library {library} (1 listed)"

    small_library(library, "smplLDL_hrt", "smplKetoWk1")  # yt-dlp adds two uploads
    added = _tick(sensor, instance, cursor=quiet.cursor, source=source)
    assert [(r.partition_key, r.tags[REASON_TAG], r.tags[VIDEO_IDS_TAG]) for r in added.run_requests] == [
        ("2024-02-12", "library:new", "smplLDL_hrt"),
        ("2024-05-13", "library:new", "smplKetoWk1"),
    ]
    assert json.loads(added.cursor) == ["smplKetoWk1", "smplLDL_hrt", "smplMeatDay"]
    assert fetch.calls == []  # type: ignore[attr-defined]  # the channel is never asked


def test_with_a_library_folder_the_schedule_is_off_and_the_sensor_on_by_default(tmp_path: Path) -> None:
    code = (
        "from chaffee_assets.definitions import defs; "
        "print(defs.get_schedule_def('daily_ingest_schedule').default_status.value, "
        "defs.get_sensor_def('channel_feed_sensor').default_status.value)"
    )
    env = {**os.environ, "CHAFFEE_LIBRARY_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.stdout.split() == ["STOPPED", "RUNNING"], result.stderr


def test_an_empty_first_feed_leaves_the_next_tick_a_first_tick(instance: dg.DagsterInstance) -> None:
    sensor = _sensor(feed_document([]), feed_document(FEED))
    first = _tick(sensor, instance, cursor=None)
    assert first.run_requests == [] and first.cursor is None
    second = _tick(sensor, instance, cursor=first.cursor)
    assert {r.tags[REASON_TAG] for r in second.run_requests} == {"feed:first_tick"}
    assert len(second.run_requests) == 2


# -- the plan on its own ------------------------------------------------------------------------


def test_a_video_dated_after_today_stays_unseen_until_its_day_exists() -> None:
    entries = parse_channel_feed(
        feed_document([("Premiere001", "Premiere", "2025-09-23T01:00:00+00:00"), *FEED])
    )
    seen = [vid for vid, _, _ in FEED]
    plan = plan_feed_runs(
        entries, seen, first_tick_days=2, first_day=NOW.date().replace(year=2015), last_day=NOW.date()
    )
    assert plan.days == {} and "Premiere001" not in plan.seen
    later = plan_feed_runs(entries, seen, first_tick_days=2, first_day=NOW.date().replace(year=2015),
                           last_day=NOW.date().replace(day=23))  # fmt: skip
    assert {d.isoformat(): ids for d, ids in later.days.items()} == {"2025-09-23": ["Premiere001"]}


def test_a_video_before_the_partition_calendar_is_remembered_but_not_run() -> None:
    entries = parse_channel_feed(feed_document(FEED))
    plan = plan_feed_runs(
        entries, [], first_tick_days=2, first_day=NOW.date().replace(day=19), last_day=NOW.date()
    )
    assert sorted(d.isoformat() for d in plan.days) == ["2025-09-20", "2025-09-21"]
    assert plan.before_calendar == ["Ab12Cd34Ef5", "Zz9Yy8Xx7Ww"]
    assert len(plan.seen) == len(FEED)


def test_the_cursor_keeps_only_the_newest_ids() -> None:
    old = [f"old{n:08d}" for n in range(MAX_SEEN_IDS)]
    plan = plan_feed_runs(parse_channel_feed(feed_document(FEED)), old, first_tick_days=2,
                          first_day=NOW.date().replace(year=2015), last_day=NOW.date())  # fmt: skip
    assert len(plan.seen) == MAX_SEEN_IDS
    assert plan.seen[: len(FEED)] == [vid for vid, _, _ in FEED]
    assert plan.seen[-1] == old[MAX_SEEN_IDS - len(FEED) - 1]
