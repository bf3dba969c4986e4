# ruff: noqa: E501  (real yt-dlp messages and a feed document are quoted whole)
"""The YouTube source at its network boundary: yt-dlp, HTTP and youtube-transcript-api are replaced by
fakes that answer with recorded real output (realdata/ytdlp_*, transcripts_json, vtt); the listing is
remembered in a real PostgreSQL."""

from __future__ import annotations

import io
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.error import URLError

import psycopg
import pytest
from requests import HTTPError
from youtube_transcript_api import (
    AgeRestricted,
    FetchedTranscript,
    FetchedTranscriptSnippet,
    IpBlocked,
    RequestBlocked,
    TranscriptsDisabled,
    VideoUnavailable,
    VideoUnplayable,
    YouTubeRequestFailed,
)
from yt_dlp.utils import DownloadError

from chaffee_assets.ingest import listing_store
from chaffee_assets.ingest.outcomes import FailureClass, TranscriptFailure
from chaffee_assets.ingest.videos import Video
from chaffee_assets.ingest.youtube import (
    FEED_URL,
    UnavailableVideo,
    YouTubeError,
    YouTubeSource,
    choose_subtitle,
    choose_transcript,
    classify_ytdlp_error,
    failure_from_transcript_api,
    normalise_channel_url,
    parse_channel_feed,
    parse_iso8601_duration,
    parse_playlist_items,
    uploads_playlist_id,
    video_from_api_item,
)
from chaffee_assets.ingest.youtube.source import BEST_AUDIO, SMALLEST_AUDIO
from chaffee_assets_tests.conftest import shared_path
from chaffee_assets_tests.source_contract import contract_problems

CHANNEL = "https://www.youtube.com/@anthonychaffeemd"
CHANNEL_ID = "UCzoRyR_nlesKZuOlEjWRXQQ"


def _info(name: str) -> dict[str, Any]:
    return json.loads(shared_path("realdata", "ytdlp_info", name).read_text(encoding="utf-8"))


def _listing_lines() -> list[dict[str, Any]]:
    path = shared_path("realdata", "ytdlp_flat_playlist", "videos_anthonychaffeemd.json")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# No recorded feed exists in realdata: this Atom document is written here in the shape YouTube
# serves at /feeds/videos.xml?channel_id=… (yt:videoId, yt:channelId, published, updated, media:group).
def _feed(entries: list[tuple[str, str, str]]) -> bytes:
    items = "".join(
        f"""
 <entry>
  <id>yt:video:{vid}</id>
  <yt:videoId>{vid}</yt:videoId>
  <yt:channelId>{CHANNEL_ID}</yt:channelId>
  <title>{title}</title>
  <link rel="alternate" href="https://www.youtube.com/watch?v={vid}"/>
  <author><name>Anthony Chaffee MD</name><uri>https://www.youtube.com/channel/{CHANNEL_ID}</uri></author>
  <published>{published}</published>
  <updated>2025-09-22T08:10:11+00:00</updated>
  <media:group>
   <media:title>{title}</media:title>
   <media:content url="https://www.youtube.com/v/{vid}?version=3" type="application/x-shockwave-flash" width="640" height="390"/>
   <media:thumbnail url="https://i1.ytimg.com/vi/{vid}/hqdefault.jpg" width="480" height="360"/>
   <media:description>About {title}</media:description>
   <media:community><media:starRating count="512" average="5.00" min="1" max="5"/><media:statistics views="5897"/></media:community>
  </media:group>
 </entry>"""
        for vid, title, published in entries
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns:yt="http://www.youtube.com/xml/schemas/2015" xmlns:media="http://search.yahoo.com/mrss/" xmlns="http://www.w3.org/2005/Atom">
 <link rel="self" href="http://www.youtube.com/feeds/videos.xml?channel_id={CHANNEL_ID}"/>
 <id>yt:channel:{CHANNEL_ID}</id>
 <yt:channelId>{CHANNEL_ID}</yt:channelId>
 <title>Anthony Chaffee MD</title>
 <link rel="alternate" href="https://www.youtube.com/channel/{CHANNEL_ID}"/>
 <author><name>Anthony Chaffee MD</name><uri>https://www.youtube.com/channel/{CHANNEL_ID}</uri></author>
 <published>2017-03-01T00:00:00+00:00</published>{items}
</feed>""".encode()


# -- fakes at the network boundary --------------------------------------------------------------


class FakeYoutubeDL:
    """Answers like `yt_dlp.YoutubeDL` from recorded data; records what was asked."""

    def __init__(self, world: FakeWorld, options: dict[str, Any]) -> None:
        self.world, self.options = world, options
        world.ydl_options.append(options)

    def __enter__(self) -> FakeYoutubeDL:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def extract_info(self, url: str, download: bool = False) -> dict[str, Any]:
        self.world.ydl_urls.append(url)
        answer = self.world.ydl_answers.get(url)
        if answer is None and "watch?v=" in url:
            answer = self.world.video_info(url.split("watch?v=")[1])
        if isinstance(answer, Exception):
            raise answer
        if answer is None:
            raise DownloadError(f"ERROR: [youtube] {url}: Video unavailable")
        return answer

    def urlopen(self, url: str) -> io.BytesIO:
        self.world.ydl_urls.append(url)
        return io.BytesIO(self.world.subtitle_bytes)

    def process_ie_result(self, info: dict[str, Any], download: bool = True) -> dict[str, Any]:
        if self.world.download_failures:
            raise self.world.download_failures.pop(0)
        template = self.options["outtmpl"]["default"]
        path = Path(template.replace("%(id)s", info["id"]).replace("%(ext)s", "m4a"))
        path.write_bytes(b"fake m4a bytes")
        return {**info, "requested_downloads": [{"filepath": str(path)}]}


class FakeWorld:
    def __init__(self) -> None:
        self.ydl_options: list[dict[str, Any]] = []
        self.ydl_urls: list[str] = []
        self.ydl_answers: dict[str, Any] = {}
        self.http: dict[str, list[tuple[int, bytes]]] = {}
        self.http_calls: list[tuple[str, dict[str, str]]] = []
        self.subtitle_bytes = b""
        self.sleeps: list[float] = []
        self.now = 0.0
        self.dates: dict[str, datetime] = {}
        self.transcript_api: Any = None
        self.download_failures: list[Exception] = []  # raised by the next audio downloads, in order

    def video_info(self, video_id: str) -> dict[str, Any] | Exception:
        if video_id in self.dates:
            return {
                "id": video_id,
                "title": f"title {video_id}",
                "timestamp": self.dates[video_id].timestamp(),
            }
        return None  # type: ignore[return-value]

    def http_get(self, url: str, query: Any) -> tuple[int, bytes]:
        self.http_calls.append((url, dict(query)))
        queue = self.http.get(url) or [(404, b"")]
        return queue.pop(0) if len(queue) > 1 else queue[0]

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now

    def source(self, warehouse_url: str, **kwargs: Any) -> YouTubeSource:
        return YouTubeSource(
            CHANNEL,
            channel_id=kwargs.pop("channel_id", CHANNEL_ID),
            conn_factory=lambda: psycopg.connect(warehouse_url),
            http_get=self.http_get,
            ydl_factory=lambda options: FakeYoutubeDL(self, options),
            transcript_api_factory=lambda: self.transcript_api,
            sleep=self.sleep,
            clock=self.clock,
            **kwargs,
        )


@pytest.fixture
def world() -> FakeWorld:
    return FakeWorld()


def _tabs(
    world: FakeWorld, videos: list[dict[str, Any]], streams: list[dict[str, Any]] | None = None
) -> None:
    world.ydl_answers[f"{CHANNEL}/videos"] = {
        "_type": "playlist",
        "channel_id": CHANNEL_ID,
        "entries": iter(videos),
    }
    world.ydl_answers[f"{CHANNEL}/streams"] = {"_type": "playlist", "entries": streams or []}
    world.ydl_answers[f"{CHANNEL}/shorts"] = DownloadError(
        "ERROR: [youtube:tab] @anthonychaffeemd: This channel does not have a shorts tab"
    )


# -- yt-dlp error messages (real ones, from yt-dlp's issue tracker) ------------------------------


@pytest.mark.parametrize(
    ("message", "failure_class", "availability"),
    [
        (
            "ERROR: [youtube] tpUr8xVxj-w: Sign in to confirm you\u2019re not a bot. Use --cookies-from-browser or"
            " --cookies for the authentication. See  https://github.com/yt-dlp/yt-dlp/wiki/FAQ#how-do-i-pass-cookies"
            "-to-yt-dlp  for how to manually pass cookies.",
            FailureClass.BLOCKED,
            None,
        ),
        (
            "ERROR: [youtube] qaImFO_DgAM: Video unavailable. This content isn\u2019t available.",
            FailureClass.BLOCKED,
            None,
        ),
        (
            "ERROR: [youtube] h7aSM88pUv8: Join this channel to get access to members-only content like this"
            " video, and other exclusive perks.",
            FailureClass.UNAVAILABLE,
            "members_only",
        ),
        (
            "ERROR: [youtube] 9iVcXphPVaM: This video is available to this channel's members on level: Assistant"
            " (or any higher level). Join this channel to get access to members-only content and other exclusive"
            " perks.",
            FailureClass.UNAVAILABLE,
            "members_only",
        ),
        (
            "ERROR: [youtube] M7mKMWjAxG8: Private video. Sign in if you've been granted access to this video",
            FailureClass.UNAVAILABLE,
            "private",
        ),
        ("ERROR: [youtube+GetPOT] CviUGzWvm6w: Premieres in 6 hours", FailureClass.UNAVAILABLE, "upcoming"),
        (
            "ERROR: [youtube+GetPOT] zDDmqpnkPy8: This live event will begin in 2 days.",
            FailureClass.UNAVAILABLE,
            "upcoming",
        ),
        ("ERROR: [youtube] videoID: This live event has ended.", FailureClass.UNAVAILABLE, "live"),
        (
            "ERROR: Video unavailable\nThis video is no longer available because the YouTube account associated"
            " with this video has been terminated.",
            FailureClass.UNAVAILABLE,
            "deleted",
        ),
        (
            "ERROR: Video unavailable\nThis video has been removed by the uploader.",
            FailureClass.UNAVAILABLE,
            "deleted",
        ),
        (
            "ERROR: [youtube] Saix8wDp2iA: This video has been removed for violating YouTube's Terms of Service",
            FailureClass.UNAVAILABLE,
            "deleted",
        ),
        ("ERROR: [youtube] XyHm0BmtLHg: Video unavailable", FailureClass.UNAVAILABLE, "deleted"),
        (
            "ERROR: [youtube] r_jCBNSsrWs: Sign in to confirm your age. This video may be inappropriate for some users.",
            FailureClass.UNAVAILABLE,
            "private",
        ),
        (
            "ERROR: [youtube] x: Unable to download webpage: HTTP Error 429: Too Many Requests (caused by"
            " <HTTPError 429: Too Many Requests>)",
            FailureClass.BLOCKED,
            None,
        ),
        (
            "ERROR: [youtube] 9rdJJMAd-PA: Requested format is not available. Use --list-formats for a list of"
            " available formats",
            FailureClass.ERROR,
            None,
        ),
    ],
)
def test_ytdlp_error_messages_are_classified(
    message: str, failure_class: FailureClass, availability: str
) -> None:
    assert classify_ytdlp_error(message) == (failure_class, availability)


# -- youtube-transcript-api exceptions (the installed release's own classes) --------------------


@pytest.mark.parametrize(
    ("exc", "failure_class", "availability"),
    [
        (RequestBlocked("vid"), FailureClass.BLOCKED, None),
        (IpBlocked("vid"), FailureClass.BLOCKED, None),
        (TranscriptsDisabled("vid"), FailureClass.NO_CAPTIONS, None),
        (VideoUnavailable("vid"), FailureClass.UNAVAILABLE, "deleted"),
        (AgeRestricted("vid"), FailureClass.UNAVAILABLE, "private"),
        (
            VideoUnplayable(
                "vid", "Join this channel to get access to members-only content like this video", []
            ),
            FailureClass.UNAVAILABLE,
            "members_only",
        ),
        (
            VideoUnplayable("vid", "This live event will begin in 3 hours.", []),
            FailureClass.UNAVAILABLE,
            "upcoming",
        ),
        (
            YouTubeRequestFailed("vid", HTTPError("429 Client Error: Too Many Requests")),
            FailureClass.BLOCKED,
            None,
        ),
        (YouTubeRequestFailed("vid", HTTPError("500 Server Error")), FailureClass.ERROR, None),
    ],
)
def test_transcript_api_exceptions_are_classified(
    exc: Exception, failure_class: FailureClass, availability
) -> None:
    failure = failure_from_transcript_api("vid", exc)
    assert failure.failure_class is failure_class
    assert getattr(failure, "availability", None) == availability
    assert "vid" in failure.message


def test_no_transcript_found_means_no_captions() -> None:
    from youtube_transcript_api import NoTranscriptFound, TranscriptList

    exc = NoTranscriptFound("vid", ["en"], TranscriptList("vid", {}, {}, []))
    assert failure_from_transcript_api("vid", exc).failure_class is FailureClass.NO_CAPTIONS


# -- choosing tracks ----------------------------------------------------------------------------


class FakeTranscript:
    def __init__(
        self, language_code: str, is_generated: bool, rows: list[dict[str, Any]] | None = None
    ) -> None:
        self.language_code, self.is_generated, self.rows = language_code, is_generated, rows or []
        self.language = language_code

    def fetch(self) -> FetchedTranscript:
        snippets = [FetchedTranscriptSnippet(r["text"], r["start"], r["duration"]) for r in self.rows]
        return FetchedTranscript(snippets, "vid", self.language, self.language_code, self.is_generated)


class FakeTranscriptApi:
    def __init__(self, transcripts: list[FakeTranscript] | Exception) -> None:
        self.transcripts = transcripts
        self.calls = 0

    def list(self, video_id: str) -> list[FakeTranscript]:
        self.calls += 1
        if isinstance(self.transcripts, Exception):
            raise self.transcripts
        return self.transcripts


def test_transcript_choice_is_english_first_then_manual() -> None:
    tracks = [FakeTranscript("de", False), FakeTranscript("en", True), FakeTranscript("en-GB", False)]
    assert choose_transcript(tracks).language_code == "en-GB"
    assert choose_transcript([FakeTranscript("de", False), FakeTranscript("en", True)]).language_code == "en"
    assert choose_transcript([]) is None


@pytest.mark.parametrize(
    ("name", "automatic", "language"),
    [
        ("test_AeonCo_2_emyi4z-O0ls.info.json", False, "en"),  # manual English exists
        ("tubesync__metadata_2023-06-29.json", True, "en-orig"),  # auto only: the original speech track
        ("tubesync__metadata_low_formats.json", True, "en-orig"),  # its only manual track is live_chat
        ("pinchflat__example.info.json", True, "en-orig"),  # English auto beats German manual
    ],
)
def test_subtitle_choice_on_real_info_files(name: str, automatic: bool, language: str) -> None:
    choice = choose_subtitle(_info(name))
    assert choice is not None
    assert (choice.automatic, choice.language, choice.ext) == (automatic, language, "json3")
    assert choice.url.startswith("https://www.youtube.com/api/timedtext")


def test_hls_subtitle_manifests_are_not_chosen() -> None:
    info = {
        "automatic_captions": {"en": [{"ext": "vtt", "protocol": "m3u8_native", "url": "https://manifest"}]}
    }
    assert choose_subtitle(info) is None


# -- feed and Data API documents ----------------------------------------------------------------


def test_the_channel_feed_is_parsed() -> None:
    entries = parse_channel_feed(_feed([("-pYI_37Xli4", "Carnivore &amp; You", "2025-09-20T15:00:06+00:00")]))
    (entry,) = entries
    assert entry.video_id == "-pYI_37Xli4"
    assert entry.title == "Carnivore & You"
    assert entry.published_at == datetime(2025, 9, 20, 15, 0, 6, tzinfo=UTC)
    assert entry.updated_at == datetime(2025, 9, 22, 8, 10, 11, tzinfo=UTC)
    assert entry.thumbnail_url == "https://i1.ytimg.com/vi/-pYI_37Xli4/hqdefault.jpg"
    assert entry.description == "About Carnivore & You"
    assert entry.channel_id == CHANNEL_ID


def test_an_html_error_page_instead_of_the_feed_is_a_clear_error() -> None:
    with pytest.raises(YouTubeError, match="not valid XML"):
        parse_channel_feed(b"<html><body>Sorry<br></body>")


def test_data_api_documents_are_parsed() -> None:
    # Written here in the Data API v3's documented response shape (no recorded response exists).
    page = {
        "kind": "youtube#playlistItemListResponse",
        "nextPageToken": "EAAaBlBUOkNESQ",
        "items": [
            {
                "snippet": {"title": "Why meat?", "videoOwnerChannelId": CHANNEL_ID},
                "contentDetails": {"videoId": "E1Yk-o8xwjw", "videoPublishedAt": "2025-09-20T15:00:06Z"},
            },
            {"snippet": {"title": "Private video"}, "contentDetails": {"videoId": "3GlEPRo5yjY"}},
        ],
    }
    entries, token = parse_playlist_items(page)
    assert token == "EAAaBlBUOkNESQ"
    assert entries[0].published_at == datetime(2025, 9, 20, 15, 0, 6, tzinfo=UTC)
    assert entries[1].published_at is None and entries[1].availability == "private"

    video = video_from_api_item(
        {
            "id": "E1Yk-o8xwjw",
            "snippet": {
                "publishedAt": "2025-09-20T15:00:06Z",
                "channelId": CHANNEL_ID,
                "title": "My Role in Healing Humanity",
                "description": "Join us",
                "thumbnails": {"default": {"url": "d.jpg"}, "high": {"url": "h.jpg"}},
                "channelTitle": "Anthony Chaffee MD",
                "tags": ["carnivore"],
                "liveBroadcastContent": "none",
                "defaultAudioLanguage": "en",
            },
            "contentDetails": {"duration": "PT1H52M55S"},
            "status": {"privacyStatus": "public"},
        }
    )
    assert (video.duration_s, video.thumbnail_url, video.language, video.availability) == (
        6775.0,
        "h.jpg",
        "en",
        "available",
    )
    assert video.published_at == datetime(2025, 9, 20, 15, 0, 6, tzinfo=UTC)


def test_durations_and_channel_helpers() -> None:
    assert parse_iso8601_duration("PT1H52M55S") == 6775.0
    assert parse_iso8601_duration("P1DT1S") == 86401.0
    assert parse_iso8601_duration("P0D") is None
    assert uploads_playlist_id(CHANNEL_ID) == "UUzoRyR_nlesKZuOlEjWRXQQ"
    assert normalise_channel_url("https://www.youtube.com/@anthonychaffeemd/videos/") == CHANNEL


# -- listing once, resolving once ---------------------------------------------------------------


def test_youtube_source_satisfies_the_video_source_interface(world: FakeWorld, warehouse_url: str) -> None:
    source = world.source(warehouse_url)
    assert contract_problems(source) == []
    assert source.name == "youtube"


def test_first_run_lists_the_channel_once_and_resolves_each_date_once(
    world: FakeWorld, warehouse_url: str
) -> None:
    lines = _listing_lines()
    ids = [line["id"] for line in lines]
    _tabs(world, lines, streams=lines[:3])  # streams also appear on /videos: kept once
    newest = [
        (ids[0], "newest", "2025-09-20T15:00:06+00:00"),
        (ids[1], "second", "2025-09-18T12:00:00+00:00"),
    ]
    world.http[FEED_URL] = [(200, _feed(newest))]
    base = datetime(2020, 1, 1, 12, tzinfo=UTC)
    members_only = {line["id"] for line in lines if line.get("availability") == "subscriber_only"}
    for i, vid in enumerate(ids[2:]):
        world.dates[vid] = base + timedelta(days=i)
    for vid in members_only:
        world.ydl_answers[f"https://www.youtube.com/watch?v={vid}"] = DownloadError(
            f"ERROR: [youtube] {vid}: Join this channel to get access to members-only content like this video,"
            " and other exclusive perks."
        )

    source = world.source(warehouse_url, request_interval_s=0.5)
    report = source.refresh_listing()

    assert report == {"listed": 572, "resolved": 570 - len(members_only), "unresolved": 0}
    tab_calls = [u for u in world.ydl_urls if "/watch?" not in u]
    assert tab_calls == [f"{CHANNEL}/videos", f"{CHANNEL}/streams", f"{CHANNEL}/shorts"]
    per_video = [u for u in world.ydl_urls if "/watch?" in u]
    assert len(per_video) == 570  # the two feed entries came with their dates
    # One pacing and retry mechanism, the source's: yt-dlp neither retries nor sleeps on its own.
    assert all(
        o["retries"] == o["extractor_retries"] == 0 and "sleep_interval_requests" not in o
        for o in world.ydl_options
    )
    assert world.sleeps and all(s <= 0.5 for s in world.sleeps)  # paced, never faster than the interval

    assert date(2025, 9, 20) in source.publish_dates()
    with psycopg.connect(warehouse_url) as conn:
        errors = {
            r.video_id: r.resolve_error for r in listing_store.all_listed(conn, CHANNEL) if r.resolve_error
        }
    assert set(errors) == members_only and all("members-only" in e for e in errors.values())

    # The next day's run: one feed request, no listing, no per-video requests for known videos.
    world.ydl_urls.clear()
    world.http_calls.clear()
    world.http[FEED_URL] = [
        (200, _feed([("brandNew001", "new today", "2025-09-21T09:00:00+00:00"), *newest]))
    ]
    world.dates["brandNew001"] = datetime(2025, 9, 21, 9, tzinfo=UTC)
    daily = world.source(warehouse_url)
    assert daily.refresh_listing()["resolved"] == 0
    assert [u for u, _ in world.http_calls] == [FEED_URL]
    assert world.ydl_urls == []
    (video,) = daily.videos_published_on(date(2025, 9, 21))
    assert video.video_id == "brandNew001" and video.source == "youtube"
    assert video.published_at == datetime(2025, 9, 21, 9, tzinfo=UTC)


def test_a_feed_with_nothing_known_means_a_gap_and_the_channel_is_listed_again(
    world: FakeWorld, warehouse_url: str
) -> None:
    with psycopg.connect(warehouse_url) as conn:
        from chaffee_assets.ingest.ytdlp_metadata import ListingEntry

        listing_store.upsert_listed(
            conn, CHANNEL, [ListingEntry("oldVideo001", "old", datetime(2020, 1, 1, tzinfo=UTC))]
        )
    _tabs(
        world, [{"_type": "url", "id": "oldVideo001", "title": "old"}, {"_type": "url", "id": "missed00001"}]
    )
    world.http[FEED_URL] = [(200, _feed([("brandNew001", "new", "2025-09-21T09:00:00+00:00")]))]
    world.dates["missed00001"] = datetime(2025, 9, 1, tzinfo=UTC)

    world.source(warehouse_url).refresh_listing()

    assert f"{CHANNEL}/videos" in world.ydl_urls
    with psycopg.connect(warehouse_url) as conn:
        assert {r.video_id for r in listing_store.all_listed(conn, CHANNEL)} == {
            "oldVideo001",
            "missed00001",
            "brandNew001",
        }


def test_a_blocked_resolver_backs_off_then_stops_and_keeps_its_progress(
    world: FakeWorld, warehouse_url: str
) -> None:
    _tabs(world, [{"_type": "url", "id": "firstVid001"}, {"_type": "url", "id": "zBlocked001"}])
    world.dates["firstVid001"] = datetime(2021, 1, 1, tzinfo=UTC)
    world.ydl_answers["https://www.youtube.com/watch?v=zBlocked001"] = DownloadError(
        "ERROR: [youtube] zBlocked001: Sign in to confirm you\u2019re not a bot."
    )
    source = world.source(warehouse_url, channel_id=None, max_retries=2, request_interval_s=1.0)
    report = source.refresh_listing()

    assert report["resolved"] == 1 and report["unresolved"] == 1
    assert world.sleeps.count(1.0 * 2**0) >= 1 and 2.0 in world.sleeps  # exponential backoff
    assert source.channel_id == CHANNEL_ID  # learnt from the listing


def test_the_data_api_lists_and_dates_the_channel_in_a_few_requests(
    world: FakeWorld, warehouse_url: str
) -> None:
    api = "https://www.googleapis.com/youtube/v3"
    ids = [line["id"] for line in _listing_lines()]
    pages = []
    for start in range(0, len(ids), 50):
        chunk = ids[start : start + 50]
        page = {"items": [{"snippet": {"title": f"t {v}"}, "contentDetails": {"videoId": v}} for v in chunk]}
        if start + 50 < len(ids):
            page["nextPageToken"] = f"page{start + 50}"
        pages.append((200, json.dumps(page).encode()))
    world.http[f"{api}/playlistItems"] = pages + [pages[-1]]

    def videos_answer(query: dict[str, str]) -> bytes:
        batch = query["id"].split(",")
        items = [
            {
                "id": v,
                "snippet": {"title": f"t {v}", "publishedAt": f"2024-01-{1 + i % 28:02d}T10:00:00Z"},
                "contentDetails": {"duration": "PT10M"},
                "status": {"privacyStatus": "public"},
            }
            for i, v in enumerate(batch)
        ]
        return json.dumps({"items": items}).encode()

    plain_get = world.http_get

    def http_get(url: str, query: Any) -> tuple[int, bytes]:
        if url == f"{api}/videos":
            world.http_calls.append((url, dict(query)))
            assert len(query["id"].split(",")) <= 50
            return 200, videos_answer(query)
        return plain_get(url, query)

    world.http_get = http_get  # type: ignore[method-assign]
    source = world.source(warehouse_url, api_key="test-key")
    report = source.refresh_listing()

    assert report["resolved"] == 572
    calls = [u for u, _ in world.http_calls]
    assert calls.count(f"{api}/playlistItems") == 12 and calls.count(f"{api}/videos") == 12
    assert all(q["key"] == "test-key" for u, q in world.http_calls if u.startswith(api))
    assert world.ydl_urls == []  # yt-dlp is not needed at all with a key
    day_videos = source.videos_published_on(date(2024, 1, 1))
    assert day_videos and all(v.duration_s == 600.0 for v in day_videos)


def test_http_429_is_retried_with_exponential_backoff(world: FakeWorld, warehouse_url: str) -> None:
    world.http[FEED_URL] = [(429, b""), (429, b""), (200, _feed([]))]
    source = world.source(warehouse_url, request_interval_s=1.0)
    assert source.feed_entries() == []
    assert [s for s in world.sleeps if s >= 1.0] == [1.0, 2.0]


def test_persistent_429_gives_up_with_a_clear_error(world: FakeWorld, warehouse_url: str) -> None:
    world.http[FEED_URL] = [(429, b"")]
    with pytest.raises(YouTubeError, match="throttling"):
        world.source(warehouse_url, max_retries=2).feed_entries()


def test_a_day_whose_video_turned_private_still_returns_the_video(
    world: FakeWorld, warehouse_url: str
) -> None:
    from chaffee_assets.ingest.ytdlp_metadata import ListingEntry

    when = datetime(2023, 3, 3, 3, tzinfo=UTC)
    with psycopg.connect(warehouse_url) as conn:
        listing_store.upsert_listed(conn, CHANNEL, [ListingEntry("nowPrivate1", "was public", when)])
    world.http[FEED_URL] = [(200, _feed([("nowPrivate1", "was public", when.isoformat())]))]
    world.ydl_answers["https://www.youtube.com/watch?v=nowPrivate1"] = DownloadError(
        "ERROR: [youtube] nowPrivate1: Private video. Sign in if you've been granted access to this video"
    )
    (video,) = world.source(warehouse_url).videos_published_on(date(2023, 3, 3))
    assert (video.video_id, video.availability, video.title, video.published_at) == (
        "nowPrivate1",
        "private",
        "was public",
        when,
    )


# -- captions and audio -------------------------------------------------------------------------


def _video(video_id: str = "AwmHb44_ouw") -> Video:
    return Video(
        video_id=video_id, source="youtube", title="t", published_at=datetime(2024, 1, 1, tzinfo=UTC)
    )


def _real_transcript_rows() -> list[dict[str, Any]]:
    data = json.loads(
        shared_path(
            "realdata", "transcripts_json", "youtube-transcript-api_2018_transcripts.json"
        ).read_text()
    )
    return data["AwmHb44_ouw"]


def test_captions_come_from_the_transcript_api_manual_english_first(
    world: FakeWorld, warehouse_url: str
) -> None:
    rows = _real_transcript_rows()
    world.transcript_api = FakeTranscriptApi(
        [FakeTranscript("en", True, rows[:3]), FakeTranscript("en", False, rows)]
    )
    track = world.source(warehouse_url).fetch_captions(_video())
    assert (track.source, track.language, track.origin) == ("manual_captions", "en", "youtube-transcript-api")
    assert len(track.cues) == len(rows)
    assert track.cues[0].text == "if you didn't know already how to do it"  # entities decoded
    assert world.ydl_urls == []


def test_no_captions_from_the_transcript_api_is_final(world: FakeWorld, warehouse_url: str) -> None:
    world.transcript_api = FakeTranscriptApi(TranscriptsDisabled("AwmHb44_ouw"))
    with pytest.raises(TranscriptFailure) as failure:
        world.source(warehouse_url).fetch_captions(_video())
    assert failure.value.failure_class is FailureClass.NO_CAPTIONS
    assert world.ydl_urls == []  # yt-dlp would only repeat YouTube's answer


def test_blocked_transcript_api_falls_back_to_ytdlp_subtitles(world: FakeWorld, warehouse_url: str) -> None:
    world.transcript_api = FakeTranscriptApi(RequestBlocked("emyi4z-O0ls"))
    world.ydl_answers["https://www.youtube.com/watch?v=emyi4z-O0ls"] = _info(
        "test_AeonCo_2_emyi4z-O0ls.info.json"
    )
    # The manual English track is offered as json3 among others; the fake serves json3 captions.
    chosen = choose_subtitle(_info("test_AeonCo_2_emyi4z-O0ls.info.json"))
    assert chosen is not None and chosen.ext == "json3"
    world.subtitle_bytes = json.dumps(
        {"events": [{"tStartMs": 0, "dDurationMs": 2000, "segs": [{"utf8": "Imagine you're a prisoner"}]}]}
    ).encode()

    track = world.source(
        warehouse_url, cookies_file="/tmp/cookies.txt", proxy="http://127.0.0.1:3128"
    ).fetch_captions(_video("emyi4z-O0ls"))
    assert (track.source, track.language, track.origin) == ("manual_captions", "en", "yt-dlp")
    assert track.cues[0].text == "Imagine you're a prisoner"
    assert world.ydl_urls[-1] == chosen.url
    assert world.ydl_options[-1]["cookiefile"] == "/tmp/cookies.txt"
    assert world.ydl_options[-1]["proxy"] == "http://127.0.0.1:3128"


def test_blocked_everywhere_is_blocked_never_no_captions(world: FakeWorld, warehouse_url: str) -> None:
    world.transcript_api = FakeTranscriptApi(IpBlocked("AwmHb44_ouw"))
    world.ydl_answers["https://www.youtube.com/watch?v=AwmHb44_ouw"] = DownloadError(
        "ERROR: [youtube] AwmHb44_ouw: Sign in to confirm you\u2019re not a bot."
    )
    with pytest.raises(TranscriptFailure) as failure:
        world.source(warehouse_url).fetch_captions(_video())
    assert failure.value.failure_class is FailureClass.BLOCKED


def test_members_only_video_is_unavailable_with_its_availability(
    world: FakeWorld, warehouse_url: str
) -> None:
    world.transcript_api = FakeTranscriptApi(RuntimeError("unexpected page layout"))
    world.ydl_answers["https://www.youtube.com/watch?v=-pYI_37Xli4"] = DownloadError(
        "ERROR: [youtube] -pYI_37Xli4: Join this channel to get access to members-only content like this video,"
        " and other exclusive perks."
    )
    with pytest.raises(UnavailableVideo) as failure:
        world.source(warehouse_url).fetch_captions(_video("-pYI_37Xli4"))
    assert failure.value.availability == "members_only"
    assert "-pYI_37Xli4" in failure.value.message


def test_audio_is_best_audio_only_into_the_destination(
    world: FakeWorld, warehouse_url: str, tmp_path: Path
) -> None:
    world.ydl_answers["https://www.youtube.com/watch?v=emyi4z-O0ls"] = _info(
        "test_AeonCo_2_emyi4z-O0ls.info.json"
    )
    path = world.source(warehouse_url).fetch_audio(_video("emyi4z-O0ls"), tmp_path / "audio")
    assert path == tmp_path / "audio" / "emyi4z-O0ls.m4a" and path.exists()
    options = world.ydl_options[-1]
    assert options["format"] == "bestaudio/best" and options["skip_download"] is False


def test_audio_for_telling_voices_apart_is_the_smallest_stream_that_serves(
    world: FakeWorld, warehouse_url: str, tmp_path: Path
) -> None:
    world.ydl_answers["https://www.youtube.com/watch?v=emyi4z-O0ls"] = _info(
        "test_AeonCo_2_emyi4z-O0ls.info.json"
    )
    world.source(warehouse_url).fetch_audio(_video("emyi4z-O0ls"), tmp_path, smallest=True)
    assert world.ydl_options[-1]["format"] == SMALLEST_AUDIO


def test_the_speaker_step_downloads_the_smallest_stream_and_an_undecodable_one_stays_unknown(
    world: FakeWorld, warehouse_url: str
) -> None:
    import numpy as np

    from chaffee_assets.ingest.store import upsert_videos
    from chaffee_assets.speakers import store
    from chaffee_assets.speakers.encoder import DEFAULT_SPEAKER_MODEL
    from chaffee_assets.speakers.labelling import Profile
    from chaffee_assets.speakers.pipeline import label_videos
    from chaffee_assets.warehouse import connect

    video = _video("emyi4z-O0ls")
    world.ydl_answers["https://www.youtube.com/watch?v=emyi4z-O0ls"] = _info(
        "test_AeonCo_2_emyi4z-O0ls.info.json"
    )
    with connect(warehouse_url, autocommit=True) as conn:
        upsert_videos(conn, [video])
        store.save_profile(conn, Profile("doc", True, np.eye(256)[0], DEFAULT_SPEAKER_MODEL, 30.0), ["a.wav"])
        report = label_videos(conn, world.source(warehouse_url), [video], lambda: None, DEFAULT_SPEAKER_MODEL)
        status = conn.execute("SELECT status FROM speaker_labellings").fetchone()
    assert world.ydl_options[-1]["format"] == SMALLEST_AUDIO
    # The stand-in download is not audio: the video is labelled unknown with the reason, not guessed.
    assert list(report.unknown) == ["emyi4z-O0ls"] and status == ("unknown",)


@pytest.mark.parametrize(
    ("name", "smallest", "best"),
    [
        # HE-AAC 48 kb/s at 22 kHz, not the 31 kb/s "ultralow" copy; the best is Opus 113 kb/s.
        ("pinchflat__example.info.json", "139", "251"),
        # Opus 60 kb/s, not its dynamic-range-compressed twin listed beside it.
        ("test_AeonCo_2_emyi4z-O0ls.info.json", "249", "251"),
        ("tubesync__metadata_low_formats.json", "139", "251"),
    ],
)
def test_yt_dlp_s_own_selector_picks_these_streams_from_real_metadata(
    name: str, smallest: str, best: str
) -> None:
    """The selectors as yt-dlp itself reads them, over the formats real videos offer."""
    from yt_dlp import YoutubeDL

    formats = _info(name)["formats"]
    ydl = YoutubeDL({"quiet": True})

    def chosen(spec: str) -> list[str]:
        context = {"formats": formats, "has_merged_format": False, "incomplete_formats": False}
        return [f["format_id"] for f in ydl.build_format_selector(spec)(context)]

    assert chosen(SMALLEST_AUDIO) == [smallest]
    assert chosen(BEST_AUDIO) == [best]
    picked = next(f for f in formats if f["format_id"] == smallest)
    assert picked["vcodec"] == "none" and picked["asr"] >= 16000


def test_a_live_stream_is_not_downloaded(world: FakeWorld, warehouse_url: str, tmp_path: Path) -> None:
    info = {**_info("tubesync__metadata_low_formats.json"), "live_status": "is_live", "is_live": True}
    world.ydl_answers["https://www.youtube.com/watch?v=gogEJyoSB9s"] = info
    with pytest.raises(UnavailableVideo) as failure:
        world.source(warehouse_url).fetch_audio(_video("gogEJyoSB9s"), tmp_path)
    assert failure.value.availability == "live"
    assert list(tmp_path.iterdir()) == []


def test_a_deleted_video_audio_download_is_unavailable(
    world: FakeWorld, warehouse_url: str, tmp_path: Path
) -> None:
    world.ydl_answers["https://www.youtube.com/watch?v=goneVideo01"] = DownloadError(
        "ERROR: [youtube] goneVideo01: Video unavailable. This video has been removed by the uploader"
    )
    with pytest.raises(UnavailableVideo) as failure:
        world.source(warehouse_url).fetch_audio(_video("goneVideo01"), tmp_path)
    assert failure.value.availability == "deleted"


# -- one pacer: every request spaced, transient failures retried, then one line ------------------


def test_a_request_that_gets_no_answer_is_retried_then_reported_in_one_line(
    world: FakeWorld, warehouse_url: str
) -> None:
    calls = []

    def unreachable(url: str, query: Any) -> tuple[int, bytes]:
        calls.append(url)
        raise URLError(OSError(101, "Network is unreachable"))

    world.http_get = unreachable  # type: ignore[method-assign]
    with pytest.raises(YouTubeError) as raised:
        world.source(warehouse_url, max_retries=2, request_interval_s=1.0).feed_entries()
    assert len(calls) == 3
    assert [s for s in world.sleeps if s >= 1.0] == [1.0, 2.0]
    assert "could not reach YouTube" in str(raised.value) and "\n" not in str(raised.value)


def test_an_audio_download_dropped_midway_is_retried_by_the_pacer(
    world: FakeWorld, warehouse_url: str, tmp_path: Path
) -> None:
    world.ydl_answers["https://www.youtube.com/watch?v=emyi4z-O0ls"] = _info(
        "test_AeonCo_2_emyi4z-O0ls.info.json"
    )
    world.download_failures = [
        DownloadError(
            "ERROR: unable to download video data: <urlopen error [Errno 104] Connection reset by peer>"
        )
    ]
    path = world.source(warehouse_url, request_interval_s=1.0).fetch_audio(_video("emyi4z-O0ls"), tmp_path)
    assert path.exists() and world.download_failures == []
    assert 1.0 in world.sleeps  # the backoff before the second try


def test_a_throttled_audio_download_is_not_retried_forever(
    world: FakeWorld, warehouse_url: str, tmp_path: Path
) -> None:
    world.ydl_answers["https://www.youtube.com/watch?v=emyi4z-O0ls"] = _info(
        "test_AeonCo_2_emyi4z-O0ls.info.json"
    )
    blocked = "ERROR: [youtube] emyi4z-O0ls: Sign in to confirm you\u2019re not a bot."
    world.download_failures = [DownloadError(blocked) for _ in range(10)]
    with pytest.raises(TranscriptFailure) as failure:
        world.source(warehouse_url, max_retries=2).fetch_audio(_video("emyi4z-O0ls"), tmp_path)
    assert failure.value.failure_class is FailureClass.BLOCKED
    assert len(world.download_failures) == 10 - 3  # the first try and two retries, no more


def test_a_data_api_item_with_impossible_fields_keeps_the_video_without_them() -> None:
    video = video_from_api_item(
        {
            "id": "apiVideo001",
            "snippet": {"title": "Steak\x00 talk", "publishedAt": "0001-01-01T00:00:00Z", "tags": ["a", 7]},
            "contentDetails": {"duration": "PT99999999H"},
        }
    )
    assert (video.title, video.published_at, video.duration_s, video.tags) == (
        "Steak talk",
        None,
        None,
        ["a"],
    )
