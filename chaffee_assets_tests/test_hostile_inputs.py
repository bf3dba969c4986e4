"""Hostile metadata, captions and settings: one bad video never costs the others, bad input is one
line, no secret is printed and nothing from outside reaches the terminal raw.

Libraries are built in temporary folders from real files in ../shared (see `hostile_library`), with
fields and bytes corrupted the ways real libraries and channels corrupt them.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from chaffee_assets.defs.failures import is_transient
from chaffee_assets.defs.ingest_assets import videos
from chaffee_assets.defs.resources import VideoSourceResource, WarehouseResource, video_source_from_env
from chaffee_assets.error_text import redact
from chaffee_assets.ingest import store
from chaffee_assets.ingest.captions import CaptionError, parse_caption_file, parse_captions
from chaffee_assets.ingest.cues import Cue, cues_within
from chaffee_assets.ingest.library import LibrarySource
from chaffee_assets.ingest.videos import Video
from chaffee_assets.ingest.youtube import parse_channel_feed
from chaffee_assets.ingest.youtube.errors import failure_from_ytdlp_error
from chaffee_assets.ingest.ytdlp_metadata import video_from_info
from chaffee_assets.ingest_runner import QUIET_CONSOLE
from chaffee_assets.warehouse.migrate import available_migrations, upgrade
from chaffee_assets.warehouse.server import WarehouseError
from chaffee_assets_tests.conftest import shared_path
from chaffee_assets_tests.hostile_library import REMOVE, SMALL_VIDEOS, copy_real_video, real_info

CHAFFEE = str(Path(sys.executable).parent / "chaffee")
DAY = datetime(2022, 2, 2, 9, tzinfo=UTC)


def run_chaffee(*args: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([CHAFFEE, *args], capture_output=True, text=True, env=env, timeout=timeout)


def assert_one_error_line(result: subprocess.CompletedProcess, status: int = 2) -> str:
    assert result.returncode == status, result.stderr
    assert "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: ")
    return line


# -- metadata: impossible fields are dropped and named; text is cleaned -----------------------------


@pytest.mark.parametrize("duration", [-5, math.nan, math.inf, 1e12, "2 hours", [7409]])
def test_an_impossible_duration_is_dropped_and_named_with_its_file(duration: object) -> None:
    info = {**real_info(SMALL_VIDEOS[0]), "duration": duration}
    video = video_from_info(info, source="library", origin="/lib/BMTt8gSl13s.info.json")
    assert video.duration_s is None
    [problem] = video.metadata_problems
    assert problem.startswith("/lib/BMTt8gSl13s.info.json: duration ")


def test_text_loses_nul_control_characters_and_lone_surrogates() -> None:
    info = {
        **real_info(SMALL_VIDEOS[0]),
        "title": "Sleep\x00 and \x1b[31mlearning\ud800",
        "description": "line one\nline\x07 two",
        "tags": ["ok", "\x00", "bad\x9btag"],
    }
    video = video_from_info(info, source="library")
    assert video.title == "Sleep and [31mlearning\ufffd"
    assert video.description == "line one\nline two"
    assert video.tags == ["ok", "badtag"]


def test_one_video_the_warehouse_refuses_costs_only_its_own_metadata(warehouse_url: str) -> None:
    good = [Video(f"goodVideo0{i}", "library", f"good {i}", DAY, duration_s=60.0) for i in range(2)]
    # Written past the sources' validation on purpose: the store must isolate what it refuses.
    refused = Video("badLength01", "library", "negative", DAY, duration_s=-5.0, tags=["x"])
    with psycopg.connect(warehouse_url, autocommit=True) as conn:
        writes = store.upsert_videos(conn, [good[0], refused, good[1]])
        rows = dict(conn.execute("SELECT video_id, duration_s FROM videos").fetchall())
    assert writes.written == 3
    assert list(writes.refused) == ["badLength01"] and "check constraint" in writes.refused["badLength01"]
    assert rows == {"goodVideo00": 60.0, "goodVideo01": 60.0, "badLength01": None}


def test_a_range_with_hostile_metadata_rows_is_written_whole(tmp_path: Path, warehouse_url: str) -> None:
    library = tmp_path / "library"
    copy_real_video(library, SMALL_VIDEOS[0], published=DAY)
    copy_real_video(library, SMALL_VIDEOS[1], published=DAY, as_id="negativeLen", fields={"duration": -5})
    copy_real_video(library, SMALL_VIDEOS[2], published=DAY, as_id="nulInTitle0", fields={"title": "a\x00b"})
    copy_real_video(library, SMALL_VIDEOS[3], published=DAY, as_id="hugeStamp01", fields={"timestamp": 1e20})
    result = dg.materialize(
        [videos],
        resources={
            "warehouse": WarehouseResource(database_url=warehouse_url),
            "video_source": VideoSourceResource(library_dir=str(library)),
        },
        partition_key=DAY.date().isoformat(),
        instance=dg.DagsterInstance.ephemeral(),
        run_config=QUIET_CONSOLE,
        raise_on_error=False,
    )
    assert result.success
    with psycopg.connect(warehouse_url) as conn:
        rows = {
            r[0]: r[1:]
            for r in conn.execute("SELECT video_id, title, duration_s, partition_date FROM videos")
        }
    assert set(rows) == {SMALL_VIDEOS[0], "negativeLen", "nulInTitle0", "hugeStamp01"}
    assert rows["negativeLen"][1] is None and rows["nulInTitle0"][0] == "ab"
    assert rows["hugeStamp01"][2] == DAY.date()  # the impossible timestamp gave way to upload_date


# -- dates: impossible timestamps are passed over, never raised ---------------------------------------


def test_impossible_timestamps_do_not_stop_the_listing(tmp_path: Path) -> None:
    copy_real_video(tmp_path, SMALL_VIDEOS[0], published=DAY)
    copy_real_video(tmp_path, SMALL_VIDEOS[1], published=DAY, as_id="stamp1e20xx", fields={"timestamp": 1e20})
    copy_real_video(
        tmp_path, SMALL_VIDEOS[2], published=DAY, as_id="stampNaNxxx", fields={"timestamp": math.nan}
    )
    copy_real_video(
        tmp_path,
        SMALL_VIDEOS[3],
        published=DAY,
        as_id="stampNegBig",
        fields={"timestamp": -1e15, "upload_date": REMOVE},
    )
    source = LibrarySource(tmp_path)

    assert source.publish_dates() == {DAY.date()}
    listed = {v.video_id for v in source.videos_published_on(DAY.date())}
    assert listed == {SMALL_VIDEOS[0], "stamp1e20xx", "stampNaNxxx"}
    [skipped] = source.skipped()
    assert skipped.video_id == "stampNegBig"
    assert "timestamp -1000000000000000.0 is not a possible publish date" in skipped.reason


def test_a_feed_date_no_video_can_have_is_dropped_not_raised() -> None:
    feed = (
        '<feed xmlns="http://www.w3.org/2005/Atom" xmlns:yt="http://www.youtube.com/xml/schemas/2015">'
        "<entry><yt:videoId>farFuture01</yt:videoId><title>t</title>"
        "<published>9999-12-31T23:59:59-05:00</published></entry></feed>"
    )
    [entry] = parse_channel_feed(feed)
    assert entry.video_id == "farFuture01" and entry.published_at is None


# -- caption times: bounded by what a video can be -------------------------------------------------


def test_a_cue_at_hour_ten_to_the_twenty_is_dropped_and_the_others_kept() -> None:
    vtt = (
        "WEBVTT\n\n00:00:01.000 --> 00:00:03.000\nfirst words\n\n"
        "99999999999999999999:00:00.000 --> 99999999999999999999:00:05.000\nnever spoken\n\n"
        "00:00:04.000 --> 00:00:06.000\nlast words\n"
    )
    cues = parse_captions(vtt, "vtt", source_name="hostile.vtt")
    assert cues == [Cue(1.0, 3.0, "first words"), Cue(4.0, 6.0, "last words")]


def test_a_file_whose_every_cue_is_past_any_video_is_refused() -> None:
    vtt = "WEBVTT\n\n999999:00:00.000 --> 999999:00:05.000\nnever spoken\n"
    with pytest.raises(CaptionError, match="every cue starts more than 7 days into the video"):
        parse_captions(vtt, "vtt", source_name="hostile.vtt")


def test_cues_past_the_end_of_a_video_of_known_length_are_dropped() -> None:
    cues = [Cue(0.0, 2.0, "a"), Cue(95.0, 130.0, "b"), Cue(200.0, 201.0, "c")]
    assert cues_within(cues, 100.0) == [Cue(0.0, 2.0, "a"), Cue(95.0, 110.0, "b")]
    assert cues_within(cues, None) == cues


def test_no_row_can_hold_a_time_past_a_week(warehouse_url: str) -> None:
    with psycopg.connect(warehouse_url, autocommit=True) as conn:
        conn.execute("INSERT INTO videos (video_id, source, title, url) VALUES ('v1', 'library', 't', 'u')")
        with pytest.raises(psycopg.errors.CheckViolation, match="transcripts_cues_within_a_week"):
            conn.execute(
                "INSERT INTO transcripts (video_id, version, source, cues) VALUES ('v1', 1, 'library_file', %s)",
                (json.dumps([{"start": 3.6e23, "end": 3.6e23, "text": "x"}]),),
            )
        transcript = conn.execute(
            "INSERT INTO transcripts (video_id, version, source, cues) VALUES ('v1', 1, 'library_file', '[]')"
            " RETURNING transcript_id"
        ).fetchone()[0]
        for start in (3.6e23, float("nan"), float("inf")):
            with pytest.raises(psycopg.errors.CheckViolation, match="segments_times_within_a_week"):
                conn.execute(
                    "INSERT INTO segments (video_id, transcript_id, ordinal, start_s, end_s, text)"
                    " VALUES ('v1', %s, 0, %s, %s, 'x')",
                    (transcript, start, start),
                )


def test_the_upgrade_repairs_a_warehouse_already_poisoned_by_such_a_time(empty_database_url: str) -> None:
    url = empty_database_url
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
                     " checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())")  # fmt: skip
        for migration in available_migrations():
            if migration.version < 4:
                conn.execute(migration.sql)
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                    (migration.version, migration.name, migration.checksum),
                )
        conn.execute("INSERT INTO videos (video_id, source, title, url) VALUES ('v1', 'library', 't', 'u')")
        cues = [{"start": 1.0, "end": 2.0, "text": "kept"}, {"start": 3.6e23, "end": 3.6e23, "text": "x"}]
        transcript = conn.execute(
            "INSERT INTO transcripts (video_id, version, source, cues) VALUES ('v1', 1, 'library_file', %s)"
            " RETURNING transcript_id",
            (json.dumps(cues),),
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO segments (video_id, transcript_id, ordinal, start_s, end_s, text) VALUES"
            " ('v1', %(t)s, 0, 1, 2, 'kept words'), ('v1', %(t)s, 1, 3.6e23, 3.6e23, 'poison words')",
            {"t": transcript},
        )
        with pytest.raises(psycopg.errors.NumericValueOutOfRange):
            conn.execute("SELECT link FROM searchable_segments").fetchall()

    upgrade(url)

    with psycopg.connect(url) as conn:
        links = [row[0] for row in conn.execute("SELECT link FROM searchable_segments")]
        stored = conn.execute("SELECT cues FROM transcripts").fetchone()[0]
    assert links == ["https://www.youtube.com/watch?v=v1&t=1s"]
    assert stored == [{"start": 1.0, "end": 2.0, "text": "kept"}]


# -- caption bytes: a few NULs are dropped, deep JSON is an error ------------------------------------


def test_a_vtt_with_a_few_nul_bytes_keeps_its_words(tmp_path: Path) -> None:
    real = shared_path("realdata", "vtt", "Longson-cmd__How_to_Evaluate_Your_Own_Level_of_English.en.vtt")
    data = real.read_bytes()
    damaged = tmp_path / "damaged.en.vtt"
    damaged.write_bytes(data[:500] + b"\x00" + data[500:2000] + b"\x00\x00" + data[2000:])
    assert parse_caption_file(damaged) == parse_caption_file(real)


def test_binary_data_is_still_refused_as_binary(tmp_path: Path) -> None:
    real = shared_path("realdata", "vtt", "Longson-cmd__How_to_Evaluate_Your_Own_Level_of_English.en.vtt")
    garbage = tmp_path / "garbage.en.vtt"
    garbage.write_bytes(b"\x00\xff\xfe\x9c" * 64 + real.read_bytes()[:300])
    with pytest.raises(CaptionError, match="binary data"):
        parse_caption_file(garbage)


def test_a_json_caption_nested_100000_deep_is_a_caption_error(tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(CaptionError, match="nested too deeply"):
        parse_caption_file(path)


def test_an_info_json_nested_100000_deep_is_skipped_with_its_reason(tmp_path: Path) -> None:
    copy_real_video(tmp_path, SMALL_VIDEOS[0], published=DAY)
    (tmp_path / "deepNested1.info.json").write_text('{"id": ' + "[" * 100_000 + "]" * 100_000 + "}")
    source = LibrarySource(tmp_path)
    assert source.publish_dates() == {DAY.date()}
    [skipped] = source.skipped()
    assert skipped.video_id == "deepNested1" and "nested too deeply" in skipped.reason


# -- settings and secrets ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("postgresql://me:hunter2@db:5432/chaffee", "hunter2"),
        ("postgresql://me@db/chaffee?sslmode=require&password=hunter2", "hunter2"),
        ("host=db user=me password=hunter2 dbname=chaffee", "hunter2"),
        ("host=db password='hunter 2' dbname=chaffee", "hunter 2"),
        ('missing "=" after "postgresql//me:hunter2@db/x" in connection info string', "hunter2"),
        ("Unable to connect to proxy http://user:hunter2@proxy.example:3128", "hunter2"),
        ("GET https://www.googleapis.com/youtube/v3/videos?id=x&key=AIzaHunter2", "AIzaHunter2"),
        ("Incorrect API key provided: sk-proj-hunter2hunter2", "hunter2hunter2"),
    ],
)
def test_no_form_of_a_secret_survives_redaction(text: str, secret: str) -> None:
    assert secret not in redact(text)
    assert "***" in redact(text)


def test_a_url_without_a_password_is_left_as_it_is() -> None:
    assert (
        redact("postgresql://me@db:5432/chaffee?sslmode=require")
        == "postgresql://me@db:5432/chaffee?sslmode=require"
    )


def test_a_proxy_password_in_a_ytdlp_error_is_not_recorded() -> None:
    message = (
        "ERROR: [youtube] abc: Unable to download webpage: Tunnel via http://me:hunter2@proxy:3128 failed"
    )
    failure = failure_from_ytdlp_error("abc", message, doing="read its metadata")
    assert "hunter2" not in failure.message and "proxy:3128" in failure.message


def test_the_proxy_url_is_kept_out_of_config_like_the_api_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHAFFEE_YOUTUBE_PROXY", "http://me:hunter2@proxy:3128")
    monkeypatch.setenv("YOUTUBE_API_KEY", "AIzaSecret")
    resource = video_source_from_env()
    for field, variable in (("proxy", "CHAFFEE_YOUTUBE_PROXY"), ("youtube_api_key", "YOUTUBE_API_KEY")):
        value = vars(resource)[field]
        assert isinstance(value, dg.EnvVar) and value.env_var_name == variable
    # Outside a run it resolves the way Dagster resolves it at run start.
    source = resource.process_config_and_initialize().get()
    assert (source.proxy, source.api_key) == ("http://me:hunter2@proxy:3128", "AIzaSecret")


MALFORMED_URL = "postgresql//me:hunter2@db/chaffee"  # the colon after the scheme is missing


@pytest.mark.parametrize("command", [["db", "status"], ["db", "upgrade"], ["ingest", "--library", "."]])
def test_a_malformed_database_url_is_one_line_naming_the_setting_without_its_password(
    command: list[str], tmp_path: Path
) -> None:
    env = {**os.environ, "DATABASE_URL": MALFORMED_URL, "CHAFFEE_HOME": str(tmp_path)}
    line = assert_one_error_line(run_chaffee(*command, env=env))
    assert "DATABASE_URL is not a PostgreSQL connection string" in line
    assert "hunter2" not in line


def test_a_keyword_connection_string_password_is_never_printed(tmp_path: Path) -> None:
    url = "host=127.0.0.1 port=1 user=me password=hunter2 dbname=chaffee"
    env = {**os.environ, "DATABASE_URL": url, "CHAFFEE_HOME": str(tmp_path)}
    line = assert_one_error_line(run_chaffee("db", "upgrade", env=env))
    assert line.startswith(
        "error: cannot connect to PostgreSQL at host=127.0.0.1 port=1 user=me password=***"
    )
    assert "hunter2" not in line


# -- the terminal ---------------------------------------------------------------------------------


def test_a_library_entry_with_an_escape_sequence_in_its_name_is_printed_without_it(
    tmp_path: Path, warehouse_url: str
) -> None:
    library = tmp_path / "library"
    library.mkdir()
    (library / "evil\x1b[2J\x1b]0;pwned\x07.info.json").write_text(
        '{"title": "x", "upload_date": "20220202"}'
    )
    result = run_chaffee(
        "ingest", "--library", str(library), env={**os.environ, "DATABASE_URL": warehouse_url}
    )
    assert result.returncode == 0, result.stderr
    assert not any(ch in result.stdout + result.stderr for ch in "\x1b\x07")
    assert "skipped evil[2J]0;pwned" in result.stdout and "control characters" in result.stdout


def test_the_no_date_reason_names_the_video(tmp_path: Path) -> None:
    copy_real_video(
        tmp_path, SMALL_VIDEOS[0], published=DAY, fields={"timestamp": REMOVE, "upload_date": REMOVE}
    )
    [skipped] = LibrarySource(tmp_path).skipped()
    assert f"so video {SMALL_VIDEOS[0]} belongs to no day" in skipped.reason
    assert "{video_id}" not in skipped.reason


# -- which failures are retried -------------------------------------------------------------------


def test_only_failures_that_waiting_can_change_are_transient(warehouse_url: str) -> None:
    with psycopg.connect(warehouse_url, autocommit=True) as conn:
        with pytest.raises(psycopg.IntegrityError) as refused_row:
            conn.execute(
                "INSERT INTO videos (video_id, source, title, url, duration_s) VALUES ('x', 'library', 't', 'u', -5)"
            )
        with pytest.raises(psycopg.DataError) as bad_text:
            conn.execute("SELECT %s::text", ("a\x00b",))
    with pytest.raises(psycopg.OperationalError) as unreachable:
        psycopg.connect("host=127.0.0.1 port=1 dbname=x connect_timeout=2")

    assert is_transient(unreachable.value)
    assert is_transient(WarehouseError("cannot connect", transient=True))
    assert not is_transient(refused_row.value)
    assert not is_transient(bad_text.value)
    assert not is_transient(WarehouseError("no pgvector"))
    assert not is_transient(FileNotFoundError("library folder /nope does not exist"))
    assert not is_transient(KeyError("a bug"))


def test_a_permanent_failure_fails_at_once_in_one_line_without_retries(
    tmp_path: Path, warehouse_url: str
) -> None:
    result = dg.materialize(
        [videos],
        resources={
            "warehouse": WarehouseResource(database_url=warehouse_url),
            "video_source": VideoSourceResource(library_dir=str(tmp_path / "no-such-library")),
        },
        partition_key=DAY.date().isoformat(),
        instance=dg.DagsterInstance.ephemeral(),
        run_config=QUIET_CONSOLE,
        raise_on_error=False,
    )
    assert not result.success
    assert not [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]
    [failure] = [e for e in result.all_events if e.is_step_failure]
    description = failure.step_failure_data.user_failure_data.description
    assert description.startswith("FileNotFoundError: library folder")
    assert "not retried" in description and "\n" not in description
