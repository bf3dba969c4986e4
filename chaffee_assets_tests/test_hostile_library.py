"""A hostile library, end to end: every good video ends with its transcript and segments, every bad
one with a recorded failure (or, if it cannot be placed on a day, a reported skip), search works
afterwards, and no exception escapes.

Two ways: one Dagster run of the whole graph over hand-picked hostile entries, and a property test
that throws generated metadata and caption bytes (Hypothesis) at the library source, the caption
parser, the store and the segmenter, built around real videos from ../shared.
"""

from __future__ import annotations

import json
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from psycopg import sql

from chaffee_assets.definitions import INGEST_ASSETS, build_resources
from chaffee_assets.defs.resources import VideoSourceResource, WarehouseResource
from chaffee_assets.ingest import store
from chaffee_assets.ingest.cues import DURATION_SLACK_S, MAX_MEDIA_SECONDS
from chaffee_assets.ingest.library import LibrarySource
from chaffee_assets.ingest.transcript_pipeline import TranscriptRules, obtain_transcript
from chaffee_assets.ingest_runner import QUIET_CONSOLE
from chaffee_assets.retrieval.pipeline import segment_videos
from chaffee_assets.search import search
from chaffee_assets.transcription.local_whisper import LocalWhisperTranscriber
from chaffee_assets.warehouse.migrate import upgrade
from chaffee_assets_tests.hostile_library import REMOVE, SMALL_VIDEOS, copy_real_video

DAY = datetime(2022, 2, 2, 9, tzinfo=UTC)
NOW = datetime(2025, 1, 1, tzinfo=UTC)  # long after DAY: the wait for auto captions is over
GOOD = SMALL_VIDEOS[:2]  # copied unchanged; one id starts with '-'
GOOD_PHRASE = "Athletic Greens"  # said in the first good video


def new_warehouse(admin_url: str) -> str:
    name = f"hostile_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = admin_url.replace("/postgres?", f"/{name}?", 1)
    upgrade(url)
    return url


@dataclass(frozen=True)
class Accounting:
    """Where each of a library's video ids ended up."""

    transcribed: dict[str, int]  # video id -> segments
    failed: dict[str, str]  # video id -> failure class
    skipped: dict[str, str]  # video id -> reason (no day to place it on)
    stored: set[str]


def account(url: str, library: Path) -> Accounting:
    ids = {path.name.split(".", 1)[0] for path in library.iterdir()}
    with psycopg.connect(url) as conn:
        transcribed = dict(
            conn.execute(
                "SELECT t.video_id, (SELECT count(*) FROM segments s WHERE s.transcript_id = t.transcript_id)"
                " FROM transcripts t WHERE t.is_current"
            ).fetchall()
        )
        failed = dict(conn.execute("SELECT video_id, failure_class FROM transcript_attempts").fetchall())
        stored = {row[0] for row in conn.execute("SELECT video_id FROM videos")}
    skipped = {s.video_id: s.reason for s in LibrarySource(library).skipped()}
    assert ids == stored | set(skipped), "a video of the library is neither stored nor reported"
    return Accounting(transcribed, failed, skipped, stored)


def assert_times_are_possible(url: str) -> None:
    with psycopg.connect(url) as conn:
        worst = conn.execute(
            "SELECT max(s.end_s), bool_and(v.duration_s IS NULL OR s.start_s <= v.duration_s + %s)"
            " FROM segments s JOIN videos v USING (video_id)",
            (DURATION_SLACK_S,),
        ).fetchone()
        links = [row[0] for row in conn.execute("SELECT link FROM searchable_segments")]
    assert worst[0] is None or worst[0] <= MAX_MEDIA_SECONDS
    assert worst[1] in (None, True)
    assert all(link.startswith("https://www.youtube.com/watch?v=") for link in links)


# -- one Dagster run over hand-picked hostile entries ------------------------------------------------


def _append_cue_at_hour(hours: int) -> Callable[[bytes], bytes]:
    return lambda data: data + f"\n\n{hours}:00:00.000 --> {hours}:00:05.000\nnever spoken\n".encode()


def _insert_nuls(data: bytes) -> bytes:
    return data[:200] + b"\x00" + data[200:900] + b"\x00\x00" + data[900:]


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory: pytest.TempPathFactory, embedded_admin_url: str) -> tuple[str, Path, Any]:
    library = tmp_path_factory.mktemp("hostile_library")
    for video_id in GOOD:
        copy_real_video(library, video_id, published=DAY)
    base = SMALL_VIDEOS[2]  # a VTT
    copy_real_video(library, base, published=DAY, as_id="negativeLen", fields={"duration": -5})
    copy_real_video(library, base, published=DAY, as_id="ctrlInTitle", fields={"title": "a\x00b\x1b[2Jc"})
    copy_real_video(library, base, published=DAY, as_id="hugeStamp01", fields={"timestamp": 1e20})
    copy_real_video(library, base, published=DAY, as_id="hourTen2020", caption=_append_cue_at_hour(10**20))
    copy_real_video(library, base, published=DAY, as_id="nulBytes001", caption=_insert_nuls)
    copy_real_video(library, base, published=DAY, as_id="pastTheEnd1", fields={"duration": 60})
    deep = copy_real_video(library, base, published=DAY, as_id="deepJson001")
    deep.unlink()
    (library / "deepJson001.en.json").write_text("[" * 100_000 + "]" * 100_000)
    copy_real_video(
        library, base, published=DAY, as_id="noDateAtAll", fields={"timestamp": REMOVE, "upload_date": REMOVE}
    )
    url = new_warehouse(embedded_admin_url)
    result = dg.materialize(
        INGEST_ASSETS,
        resources={
            **build_resources(VideoSourceResource(library_dir=str(library))),
            "warehouse": WarehouseResource(database_url=url),
        },
        partition_key=DAY.date().isoformat(),
        instance=dg.DagsterInstance.ephemeral(),
        run_config=QUIET_CONSOLE,
        raise_on_error=False,
    )
    return url, library, result


def test_a_hostile_library_ingests_in_one_run_that_succeeds(hostile_run: tuple[str, Path, Any]) -> None:
    url, library, result = hostile_run
    assert result.success
    assert not [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]
    accounting = account(url, library)

    usable = {*GOOD, "negativeLen", "ctrlInTitle", "hugeStamp01", "hourTen2020", "nulBytes001"}
    assert set(accounting.transcribed) == usable
    assert all(segments > 0 for segments in accounting.transcribed.values())
    assert accounting.failed == {"pastTheEnd1": "error", "deepJson001": "error"}
    assert set(accounting.skipped) == {"noDateAtAll"}
    with psycopg.connect(url) as conn:
        messages = dict(conn.execute("SELECT video_id, message FROM transcript_attempts").fetchall())
        title = conn.execute("SELECT title FROM videos WHERE video_id = 'ctrlInTitle'").fetchone()[0]
    assert str(library / "deepJson001.en.json") in messages["deepJson001"]
    assert "after the video's end" in messages["pastTheEnd1"]
    assert title == "ab[2Jc"
    assert_times_are_possible(url)


def test_search_works_after_a_hostile_library(hostile_run: tuple[str, Path, Any]) -> None:
    url, _, _ = hostile_run
    with psycopg.connect(url) as conn:
        hits = search(GOOD_PHRASE, k=5, mode="text", conn=conn)
        conn.execute("SELECT * FROM searchable_segments").fetchall()
    assert hits and hits[0].video_id == GOOD[0]
    assert hits[0].link.startswith(f"https://www.youtube.com/watch?v={GOOD[0]}&t=")


# -- generated hostile metadata and captions ----------------------------------------------------------

# What PostgreSQL cannot store, what a terminal obeys, what a parser trips on, and everything else.
_hostile_characters = st.sampled_from(list("\x00\x1b\x07\x9b\n\t\u202e\ud800\udfff🥩é a:")) | st.characters(
    exclude_categories=()
)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([-5, 0, 1e20, -1e15, 1e308, float("nan"), float("inf"), 2**63])
    | st.text(_hostile_characters, max_size=12)
    | st.sampled_from(["20220202", "99999999", "2022-02-02T09:00:00Z", "", "private", "is_live", "playlist"])
)
_json_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)
_FIELDS = [
    "id", "title", "fulltitle", "duration", "timestamp", "upload_date", "release_timestamp", "tags",
    "description", "channel", "channel_id", "language", "thumbnail", "webpage_url", "availability",
    "live_status", "_type",
]  # fmt: skip
metadata_overrides = st.dictionaries(st.sampled_from(_FIELDS), _json_values | st.just(REMOVE), max_size=4)


def _insert(at: int, junk: bytes) -> Callable[[bytes], bytes]:
    return lambda data: data[: at % (len(data) + 1)] + junk + data[at % (len(data) + 1) :]


caption_rewrites = st.one_of(
    st.none(),
    st.builds(
        _insert, st.integers(0, 5000), st.sampled_from([b"\x00", b"\x00\x00", b"\x1b[2J", b"\xff", b"\r"])
    ),
    st.builds(_append_cue_at_hour, st.integers(0, 10**20)),
    st.builds(lambda cut: lambda data: data[:cut], st.integers(0, 3000)),
    st.binary(max_size=200).map(lambda junk: lambda data: junk),
    st.text(st.characters(exclude_categories=("Cs",)), max_size=200).map(lambda t: lambda data: t.encode()),
)


@dataclass(frozen=True)
class HostileVideo:
    base: str
    fields: dict[str, Any]
    caption: Callable[[bytes], bytes] | None


hostile_videos = st.builds(
    HostileVideo, st.sampled_from(SMALL_VIDEOS[2:]), metadata_overrides, caption_rewrites
)


@pytest.fixture(scope="module")
def property_warehouse(embedded_admin_url: str) -> str:
    return new_warehouse(embedded_admin_url)


def ingest_without_dagster(url: str, library: Path) -> None:
    """What the assets do, called directly: list, store, transcribe (captions), segment."""
    source = LibrarySource(library)
    found = [video for day in sorted(source.publish_dates()) for video in source.videos_published_on(day)]
    with psycopg.connect(url, autocommit=True) as conn:
        store.upsert_videos(conn, found)
        for video in found:
            obtain_transcript(conn, video, source, LocalWhisperTranscriber, now=NOW, rules=TranscriptRules())
        segment_videos(conn, [video.video_id for video in found])


@pytest.fixture
def clean_warehouse(property_warehouse: str) -> Iterator[Callable[[], str]]:
    def clean() -> str:
        with psycopg.connect(property_warehouse, autocommit=True) as conn:
            conn.execute("TRUNCATE videos, channel_listing CASCADE")
        return property_warehouse

    yield clean


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(hostile=st.lists(hostile_videos, min_size=1, max_size=3))
# The kinds found by hand, always tried besides the generated ones.
@example(
    hostile=[
        HostileVideo(SMALL_VIDEOS[2], {"title": "a\x00b\x1b[2J\ud800", "duration": -5}, None),
        HostileVideo(SMALL_VIDEOS[3], {"timestamp": 1e20, "tags": ["\x00", 7]}, _append_cue_at_hour(10**20)),
        HostileVideo(SMALL_VIDEOS[2], {"timestamp": float("nan")}, _insert(700, b"\x00")),
    ]
)
def test_generated_hostile_entries_never_cost_the_good_videos(
    hostile: list[HostileVideo], clean_warehouse: Callable[[], str]
) -> None:
    url = clean_warehouse()
    with tempfile.TemporaryDirectory() as folder:
        library = Path(folder)
        for video_id in GOOD:
            copy_real_video(library, video_id, published=DAY)
        for index, video in enumerate(hostile):
            copy_real_video(
                library, video.base, published=DAY, as_id=f"hostile{index:04d}", fields=video.fields,
                caption=video.caption,
            )  # fmt: skip

        ingest_without_dagster(url, library)  # no exception escapes

        accounting = account(url, library)
        for video_id in GOOD:
            assert accounting.transcribed.get(video_id, 0) > 0, f"good video {video_id} lost"
        for video_id in accounting.stored - set(GOOD):
            assert accounting.transcribed.get(video_id, 0) > 0 or video_id in accounting.failed, video_id
        assert all(reason for reason in accounting.skipped.values())
        with psycopg.connect(url) as conn:
            hits = search(GOOD_PHRASE, k=5, mode="text", conn=conn)
        assert GOOD[0] in {hit.video_id for hit in hits}
        assert_times_are_possible(url)


def test_the_generated_library_files_are_what_the_library_reads(tmp_path: Path) -> None:
    # The property test above relies on copy_real_video writing files the library lists by id.
    caption = copy_real_video(
        tmp_path, SMALL_VIDEOS[2], published=DAY, as_id="hostile0000", fields={"title": "t"}
    )
    assert caption.name.startswith("hostile0000.en.")
    assert json.loads((tmp_path / "hostile0000.info.json").read_text())["id"] == "hostile0000"
    assert [v.video_id for v in LibrarySource(tmp_path).videos_published_on(DAY.date())] == ["hostile0000"]
