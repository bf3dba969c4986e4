"""The YouTube channel as a `VideoSource` named "youtube": listing, publish dates, captions and audio.

How publish dates are found without a request per video per day:
1. The first run lists the whole channel once: the Data API's uploads playlist when an API key is
   given (50 ids and dates a request), else yt-dlp's flat listing of the /videos, /streams and
   /shorts tabs (ids and titles, no dates). Everything goes into `channel_listing`.
2. Dates still missing are resolved once ever: `videos.list` in batches of 50 with a key, else
   the RSS feed (the newest ~15), else one rate-limited yt-dlp metadata request per video. Each
   result is committed as it comes, so an interrupted run keeps its progress.
3. Later runs ask only the RSS feed (one request) or the uploads playlist's first page for what is
   new, and list the whole channel again only when the feed holds nothing already known (a gap).

Network access sits behind three injected callables (an HTTP GET, a `YoutubeDL` factory and a
youtube-transcript-api factory), so everything here is tested on recorded yt-dlp output without
reaching YouTube.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import psycopg

from chaffee_assets.ingest import listing_store
from chaffee_assets.ingest.library import is_english
from chaffee_assets.ingest.outcomes import FailureClass, TranscriptFailure
from chaffee_assets.ingest.sources import CaptionTrack
from chaffee_assets.ingest.videos import Video, watch_url
from chaffee_assets.ingest.ytdlp_metadata import (
    ListingEntry,
    availability_of,
    listing_entries_from_info,
    video_from_info,
)

HttpGet = Callable[[str, Mapping[str, str]], tuple[int, bytes]]  # (url, query) → (status, body)
YdlFactory = Callable[[dict[str, Any]], Any]  # options → a YoutubeDL-like context manager
TranscriptApiFactory = Callable[[], Any]  # → a YouTubeTranscriptApi-like object

FEED_URL = "https://www.youtube.com/feeds/videos.xml"
DATA_API = "https://www.googleapis.com/youtube/v3"
CHANNEL_TABS = ("videos", "streams", "shorts")
API_BATCH = 50  # the Data API's maximum ids per videos.list call
_SUBTITLE_FORMATS = ("json3", "srv3", "vtt", "srt")  # json3/srv3: clean cues, no rolling duplicates


class YouTubeError(RuntimeError):
    """YouTube could not be asked at all (listing failed, quota exhausted); the message says what to do."""


class UnavailableVideo(TranscriptFailure):
    """UNAVAILABLE with the availability it implies (private, deleted, members_only, live, upcoming)."""

    def __init__(self, message: str, availability: str | None) -> None:
        super().__init__(FailureClass.UNAVAILABLE, message)
        self.availability = availability


# -- yt-dlp error messages ----------------------------------------------------------------------

# Ordered: the first matching rule wins. Texts are YouTube's own playability messages as yt-dlp
# relays them (lower-cased, curly apostrophes straightened).
_YTDLP_RULES: tuple[tuple[tuple[str, ...], FailureClass, str | None], ...] = (
    (
        (
            "not a bot",
            "http error 429",
            "too many requests",
            "rate-limited",
            "try again later",
            "captcha",
            # "Video unavailable. This content isn't available." is what a throttled session sees
            # for videos that play fine in a browser: treat as blocked and retry, never as deleted.
            "this content isn't available",
        ),
        FailureClass.BLOCKED,
        None,
    ),
    (("members-only", "channel's members", "join this channel"), FailureClass.UNAVAILABLE, "members_only"),
    (("private video", "this video is private"), FailureClass.UNAVAILABLE, "private"),
    (("premieres in", "live event will begin", "is upcoming"), FailureClass.UNAVAILABLE, "upcoming"),
    (("live event has ended", "is live", "currently live", "post-live"), FailureClass.UNAVAILABLE, "live"),
    (
        ("confirm your age", "age-restricted", "inappropriate for some users"),
        FailureClass.UNAVAILABLE,
        "private",
    ),
    (("not made this video available in your country",), FailureClass.UNAVAILABLE, None),
    (
        (
            "video unavailable",
            "has been removed",
            "no longer available",
            "account associated with this video has been terminated",
            "this video is unavailable",
            "this video is not available",
            "recording is not available",
            "does not exist",
        ),
        FailureClass.UNAVAILABLE,
        "deleted",
    ),
)


def classify_ytdlp_error(message: str) -> tuple[FailureClass, str | None]:
    """The failure class and availability a yt-dlp `DownloadError` message means.

    Availability is None when the message says nothing about it (blocked, geo-blocked, a bug).
    """
    text = message.lower().replace("\u2019", "'")
    for needles, failure_class, availability in _YTDLP_RULES:
        if any(n in text for n in needles):
            return failure_class, availability
    return FailureClass.ERROR, None


def failure_from_ytdlp_error(video_id: str, message: str, *, doing: str) -> TranscriptFailure:
    failure_class, availability = classify_ytdlp_error(message)
    first_line = message.strip().splitlines()[0] if message.strip() else "no message"
    text = f"video {video_id}: yt-dlp could not {doing}: {first_line}"
    if failure_class is FailureClass.UNAVAILABLE:
        return UnavailableVideo(text, availability)
    if failure_class is FailureClass.BLOCKED:
        text += " (YouTube is throttling this IP: wait, or set a proxy or a cookies file)"
    return TranscriptFailure(failure_class, text)


# -- youtube-transcript-api exceptions ---------------------------------------------------------

_TRANSCRIPT_API_CLASSES: dict[str, tuple[FailureClass, str | None]] = {
    "RequestBlocked": (FailureClass.BLOCKED, None),
    "IpBlocked": (FailureClass.BLOCKED, None),
    "TooManyRequests": (FailureClass.BLOCKED, None),  # name used by releases before 1.0
    "TranscriptsDisabled": (FailureClass.NO_CAPTIONS, None),
    "NoTranscriptFound": (FailureClass.NO_CAPTIONS, None),
    "NoTranscriptAvailable": (FailureClass.NO_CAPTIONS, None),  # before 1.0
    "VideoUnavailable": (FailureClass.UNAVAILABLE, "deleted"),
    "InvalidVideoId": (FailureClass.UNAVAILABLE, "deleted"),
    "AgeRestricted": (FailureClass.UNAVAILABLE, "private"),
    "VideoUnplayable": (FailureClass.UNAVAILABLE, None),  # refined from its reason below
}


def failure_from_transcript_api(video_id: str, exc: Exception) -> TranscriptFailure:
    """The failure class of a youtube-transcript-api exception (matched by class name up the MRO,
    so subclasses such as IpBlocked → RequestBlocked and older releases' names both map)."""
    first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    for cls in type(exc).__mro__:
        mapped = _TRANSCRIPT_API_CLASSES.get(cls.__name__)
        if mapped is None:
            continue
        failure_class, availability = mapped
        text = f"video {video_id}: youtube-transcript-api {type(exc).__name__}"
        if cls.__name__ == "VideoUnplayable":
            reason = " ".join(
                [str(getattr(exc, "reason", "") or "")] + list(getattr(exc, "sub_reasons", []) or [])
            )
            refined_class, availability = classify_ytdlp_error(reason)
            if refined_class is FailureClass.BLOCKED:
                return TranscriptFailure(FailureClass.BLOCKED, f"{text}: {reason.strip()}")
            return UnavailableVideo(f"{text}: {reason.strip() or first_line}", availability)
        if failure_class is FailureClass.UNAVAILABLE:
            return UnavailableVideo(text, availability)
        return TranscriptFailure(failure_class, text)
    if type(exc).__name__ == "YouTubeRequestFailed" and "429" in str(getattr(exc, "reason", exc)):
        return TranscriptFailure(FailureClass.BLOCKED, f"video {video_id}: HTTP 429 from YouTube")
    return TranscriptFailure(FailureClass.ERROR, f"video {video_id}: youtube-transcript-api: {first_line}")


def choose_transcript(transcripts: Sequence[Any]) -> Any | None:
    """English first, manual before generated, plain `en` before regional variants."""
    if not transcripts:
        return None
    return min(
        transcripts,
        key=lambda t: (
            0 if is_english(t.language_code) else 1,
            1 if t.is_generated else 0,
            0 if t.language_code == "en" else 1,
        ),
    )


# -- yt-dlp subtitles in an info dict -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SubtitleChoice:
    automatic: bool
    language: str
    ext: str
    url: str


def choose_subtitle(info: Mapping[str, Any]) -> SubtitleChoice | None:
    """The best downloadable subtitle track of an info dict: English first, manual before auto.

    HLS-manifest tracks (`m3u8_native`) are passed over: they are playlists, not caption files.
    """
    options: list[tuple[tuple[int, int, int, int], SubtitleChoice]] = []
    for automatic, key in ((False, "subtitles"), (True, "automatic_captions")):
        tracks = info.get(key)
        if not isinstance(tracks, Mapping):
            continue
        for language, formats in tracks.items():
            if language == "live_chat" or not isinstance(formats, list):
                continue
            for fmt in formats:
                if not isinstance(fmt, Mapping) or fmt.get("ext") not in _SUBTITLE_FORMATS:
                    continue
                if fmt.get("protocol") not in (None, "http", "https") or not isinstance(fmt.get("url"), str):
                    continue
                # For auto captions `<lang>-orig` is the original speech; plain `en` may be a translation.
                variant = 0 if language == ("en-orig" if automatic else "en") else 1
                rank = (
                    0 if is_english(language) else 1,
                    1 if automatic else 0,
                    variant,
                    _SUBTITLE_FORMATS.index(fmt["ext"]),
                )
                options.append((rank, SubtitleChoice(automatic, language, fmt["ext"], fmt["url"])))
    return min(options, key=lambda o: o[0])[1] if options else None


# -- the RSS feed -------------------------------------------------------------------------------

_NS = {
    "atom": "http://www.w3.org/2005/Atom",
    "yt": "http://www.youtube.com/xml/schemas/2015",
    "media": "http://search.yahoo.com/mrss/",
}


@dataclass(frozen=True, slots=True)
class FeedEntry:
    video_id: str
    title: str | None
    published_at: datetime | None
    updated_at: datetime | None
    thumbnail_url: str | None
    description: str | None
    channel_id: str | None

    def listing_entry(self) -> ListingEntry:
        return ListingEntry(
            video_id=self.video_id,
            title=self.title,
            published_at=self.published_at,
            description=self.description,
            thumbnail_url=self.thumbnail_url,
            channel_id=self.channel_id,
        )


def _iso_datetime(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_channel_feed(xml: bytes | str) -> list[FeedEntry]:
    """Entries of a channel's Atom feed (`/feeds/videos.xml?channel_id=…`), newest first as served."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise YouTubeError(
            f"the channel RSS feed is not valid XML ({exc}); YouTube may have served an error page"
        ) from exc
    entries = []
    for node in root.findall("atom:entry", _NS):
        video_id = node.findtext("yt:videoId", namespaces=_NS)
        if not video_id:
            continue
        thumb = node.find("media:group/media:thumbnail", _NS)
        entries.append(
            FeedEntry(
                video_id=video_id.strip(),
                title=node.findtext("atom:title", namespaces=_NS),
                published_at=_iso_datetime(node.findtext("atom:published", namespaces=_NS)),
                updated_at=_iso_datetime(node.findtext("atom:updated", namespaces=_NS)),
                thumbnail_url=thumb.get("url") if thumb is not None else None,
                description=node.findtext("media:group/media:description", namespaces=_NS),
                channel_id=node.findtext("yt:channelId", namespaces=_NS),
            )
        )
    return entries


# -- the Data API -------------------------------------------------------------------------------

_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$")


def parse_iso8601_duration(value: str | None) -> float | None:
    """Seconds in a Data API duration such as `PT1H52M55S`; None for `P0D` of an upcoming stream."""
    match = _DURATION.match(value or "")
    if not match or not any(match.groups()):
        return None
    days, hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    total = days * 86400 + hours * 3600 + minutes * 60 + seconds
    return total or None


def uploads_playlist_id(channel_id: str) -> str:
    """A channel's uploads playlist: its id with `UC` swapped for `UU` (saves a channels.list call)."""
    if not channel_id.startswith("UC"):
        raise ValueError(f"{channel_id!r} is not a channel id (UC…)")
    return "UU" + channel_id[2:]


def parse_playlist_items(page: Mapping[str, Any]) -> tuple[list[ListingEntry], str | None]:
    """Listing entries of one `playlistItems.list` page (part=snippet,contentDetails) and the next token."""
    entries = []
    for item in page.get("items") or []:
        details = item.get("contentDetails") or {}
        snippet = item.get("snippet") or {}
        video_id = details.get("videoId") or (snippet.get("resourceId") or {}).get("videoId")
        if not video_id:
            continue
        title = snippet.get("title")
        availability = {"Private video": "private", "Deleted video": "deleted"}.get(title or "", "available")
        entries.append(
            ListingEntry(
                video_id=video_id,
                title=title,
                published_at=_iso_datetime(details.get("videoPublishedAt")),
                availability=availability,
                channel_id=snippet.get("videoOwnerChannelId") or snippet.get("channelId"),
            )
        )
    return entries, page.get("nextPageToken")


def video_from_api_item(item: Mapping[str, Any]) -> Video:
    """A `Video` from one `videos.list` item (part=snippet,contentDetails,status,liveStreamingDetails)."""
    snippet = item.get("snippet") or {}
    status = item.get("status") or {}
    live = snippet.get("liveBroadcastContent")
    availability = {"live": "live", "upcoming": "upcoming"}.get(live or "", "available")
    if status.get("privacyStatus") == "private":
        availability = "private"
    thumbnails = snippet.get("thumbnails") or {}
    thumbnail = next(
        (
            thumbnails[k]["url"]
            for k in ("maxres", "standard", "high", "medium", "default")
            if k in thumbnails
        ),
        None,
    )
    video_id = item["id"]
    return Video(
        video_id=video_id,
        source="youtube",
        title=snippet.get("title") or video_id,
        published_at=_iso_datetime(snippet.get("publishedAt")),
        description=snippet.get("description") or None,
        duration_s=parse_iso8601_duration((item.get("contentDetails") or {}).get("duration")),
        channel=snippet.get("channelTitle"),
        channel_id=snippet.get("channelId"),
        tags=list(snippet.get("tags") or []),
        thumbnail_url=thumbnail,
        url=watch_url(video_id),
        availability=availability,
        language=snippet.get("defaultAudioLanguage") or snippet.get("defaultLanguage"),
    )


# -- the real network layer (thin; not reached by the tests) ------------------------------------


def urllib_get(proxy: str | None = None, timeout_s: float = 30.0) -> HttpGet:
    handlers = [urllib.request.ProxyHandler({"http": proxy, "https": proxy})] if proxy else []
    opener = urllib.request.build_opener(*handlers)

    def get(url: str, query: Mapping[str, str]) -> tuple[int, bytes]:
        full = f"{url}?{urllib.parse.urlencode(query)}" if query else url
        request = urllib.request.Request(full, headers={"User-Agent": "chaffee-assets/0.1"})
        try:
            with opener.open(request, timeout=timeout_s) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    return get


def _default_ydl_factory(options: dict[str, Any]) -> Any:
    import yt_dlp

    return yt_dlp.YoutubeDL(options)


def _default_transcript_api_factory(proxy: str | None) -> TranscriptApiFactory:
    def build() -> Any:
        from youtube_transcript_api import YouTubeTranscriptApi
        from youtube_transcript_api.proxies import GenericProxyConfig

        config = GenericProxyConfig(http_url=proxy, https_url=proxy) if proxy else None
        return YouTubeTranscriptApi(proxy_config=config)

    return build


def _default_conn_factory() -> psycopg.Connection:
    from chaffee_assets.warehouse.migrate import ensure_schema
    from chaffee_assets.warehouse.server import connect

    return connect(ensure_schema())


def _download_error_type() -> type[Exception]:
    from yt_dlp.utils import DownloadError

    return DownloadError


# -- the source ---------------------------------------------------------------------------------


def normalise_channel_url(channel_url: str) -> str:
    """The channel's base URL: no trailing slash, no tab (`/videos`, `/streams`…) at the end."""
    url = channel_url.strip().rstrip("/")
    for tab in (*CHANNEL_TABS, "featured", "live"):
        if url.endswith("/" + tab):
            return url[: -len(tab) - 1]
    return url


class YouTubeSource:
    """The channel's videos, captions and audio, remembering its listing in `channel_listing`."""

    name = "youtube"

    def __init__(
        self,
        channel_url: str,
        *,
        channel_id: str | None = None,
        api_key: str | None = None,
        proxy: str | None = None,
        cookies_file: Path | str | None = None,
        request_interval_s: float = 2.0,
        max_retries: int = 4,
        conn_factory: Callable[[], psycopg.Connection] | None = None,
        http_get: HttpGet | None = None,
        ydl_factory: YdlFactory | None = None,
        transcript_api_factory: TranscriptApiFactory | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.channel_url = normalise_channel_url(channel_url)
        self.channel_id = channel_id
        self.api_key = api_key or None
        self.proxy = proxy or None
        self.cookies_file = str(cookies_file) if cookies_file else None
        self.request_interval_s = request_interval_s
        self.max_retries = max_retries
        self._conn_factory = conn_factory or _default_conn_factory
        self._http_get = http_get or urllib_get(self.proxy)
        self._ydl_factory = ydl_factory or _default_ydl_factory
        self._transcript_api_factory = transcript_api_factory or _default_transcript_api_factory(self.proxy)
        self._sleep = sleep
        self._clock = clock
        self._last_request: float | None = None
        self._refreshed = False
        self._videos: dict[str, Video] = {}  # full metadata fetched during this instance's life
        self._feed: dict[str, FeedEntry] = {}

    # -- pacing -------------------------------------------------------------------------------

    def _throttle(self) -> None:
        """Keep successive requests at least `request_interval_s` apart."""
        now = self._clock()
        if self._last_request is not None:
            wait = self.request_interval_s - (now - self._last_request)
            if wait > 0:
                self._sleep(wait)
        self._last_request = self._clock()

    def _backoff(self, attempt: int) -> None:
        self._sleep(max(self.request_interval_s, 1.0) * (2**attempt))

    def _get(self, url: str, query: Mapping[str, str], *, what: str) -> bytes:
        """A GET with pacing and exponential backoff on 429 and 5xx; `YouTubeError` when it gives up."""
        status = 0
        for attempt in range(self.max_retries + 1):
            self._throttle()
            status, body = self._http_get(url, query)
            if status == 200:
                return body
            if status == 429 or status >= 500:
                if attempt < self.max_retries:
                    self._backoff(attempt)
                continue
            detail = _api_error_reason(body)
            raise YouTubeError(f"{what} failed with HTTP {status}{detail}; check the channel id and API key")
        raise YouTubeError(
            f"{what} still failed with HTTP {status} after {self.max_retries} retries: YouTube is throttling"
            " this IP; try later, or set a proxy"
        )

    def _ydl_options(self, **extra: Any) -> dict[str, Any]:
        options: dict[str, Any] = {
            "quiet": True,
            "no_warnings": True,
            "noprogress": True,
            "skip_download": True,
            "sleep_interval_requests": self.request_interval_s,
            "retries": self.max_retries,
            "extractor_retries": self.max_retries,
        }
        if self.proxy:
            options["proxy"] = self.proxy
        if self.cookies_file:
            options["cookiefile"] = self.cookies_file
        options.update(extra)
        return options

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection]:
        with self._conn_factory() as conn:
            yield conn

    # -- listing ------------------------------------------------------------------------------

    def list_channel_with_ytdlp(self) -> list[ListingEntry]:
        """Every video on the channel's tabs (ids and titles; no dates) through one yt-dlp session."""
        download_error = _download_error_type()
        entries: dict[str, ListingEntry] = {}
        with self._ydl_factory(self._ydl_options(extract_flat="in_playlist")) as ydl:
            for tab in CHANNEL_TABS:
                url = f"{self.channel_url}/{tab}"
                self._throttle()
                try:
                    info = ydl.extract_info(url, download=False)
                except download_error as exc:
                    if "does not have a" in str(exc):  # e.g. "This channel does not have a shorts tab"
                        continue
                    raise YouTubeError(f"listing {url} with yt-dlp failed: {exc}") from exc
                if not self.channel_id and isinstance(info, Mapping):
                    self.channel_id = info.get("channel_id") or info.get("id")
                for entry in listing_entries_from_info(info, origin=url):
                    entries.setdefault(entry.video_id, entry)
        return list(entries.values())

    def feed_entries(self) -> list[FeedEntry]:
        """The newest ~15 videos with their publish times, from the channel's RSS feed (one request)."""
        if not self.channel_id:
            return []
        body = self._get(FEED_URL, {"channel_id": self.channel_id}, what="the channel RSS feed")
        entries = parse_channel_feed(body)
        self._feed.update((e.video_id, e) for e in entries)
        return entries

    def _api(self, resource: str, query: dict[str, str]) -> dict[str, Any]:
        body = self._get(
            f"{DATA_API}/{resource}", {**query, "key": self.api_key or ""}, what=f"Data API {resource}"
        )
        return json.loads(body)

    def list_uploads_with_api(self, known: set[str] | None = None) -> list[ListingEntry]:
        """The uploads playlist with publish dates, 50 a request; stops at the first page of known ids."""
        if not self.channel_id:
            raise YouTubeError(f"the Data API needs the channel id of {self.channel_url}; set channel_id")
        entries: list[ListingEntry] = []
        token: str | None = None
        while True:
            query = {"part": "contentDetails,snippet", "playlistId": uploads_playlist_id(self.channel_id)}
            query["maxResults"] = str(API_BATCH)
            if token:
                query["pageToken"] = token
            page_entries, token = parse_playlist_items(self._api("playlistItems", query))
            entries.extend(page_entries)
            if not token or (known is not None and all(e.video_id in known for e in page_entries)):
                return entries

    def videos_with_api(self, video_ids: Sequence[str]) -> dict[str, Video]:
        """Full metadata for ids, 50 a request (`videos.list`)."""
        found: dict[str, Video] = {}
        for start in range(0, len(video_ids), API_BATCH):
            batch = video_ids[start : start + API_BATCH]
            query = {"part": "snippet,contentDetails,status,liveStreamingDetails", "id": ",".join(batch)}
            for item in self._api("videos", query).get("items") or []:
                video = video_from_api_item(item)
                found[video.video_id] = video
        self._videos.update(found)
        return found

    def video_with_ytdlp(self, video_id: str) -> Video:
        """Full metadata of one video through yt-dlp (one request); `TranscriptFailure` when it cannot."""
        download_error = _download_error_type()
        options = self._ydl_options(extractor_args={"youtube": {"skip": ["hls", "dash", "translated_subs"]}})
        for attempt in range(self.max_retries + 1):
            self._throttle()
            try:
                with self._ydl_factory(options) as ydl:
                    info = ydl.extract_info(watch_url(video_id), download=False)
            except download_error as exc:
                failure = failure_from_ytdlp_error(video_id, str(exc), doing="read its metadata")
                if failure.failure_class is FailureClass.BLOCKED and attempt < self.max_retries:
                    self._backoff(attempt)
                    continue
                raise failure from exc
            video = video_from_info(info, source=self.name, origin=f"yt-dlp metadata of {video_id}")
            self._videos[video_id] = video
            return video
        raise AssertionError("unreachable")

    def refresh_listing(self) -> dict[str, int]:
        """Bring `channel_listing` up to date and resolve missing dates. Runs once per instance."""
        report = {"listed": 0, "resolved": 0, "unresolved": 0}
        with self._connection() as conn:
            known = {row.video_id for row in listing_store.all_listed(conn, self.channel_url)}
            if self.api_key:
                listed = self.list_uploads_with_api(known if known else None)
            elif not known:
                listed = self.list_channel_with_ytdlp()
            else:
                listed = []
            feed = [e.listing_entry() for e in self._feed_or_nothing()]
            if known and not self.api_key and feed and not any(e.video_id in known for e in feed):
                # More new videos than the feed holds: list the channel again to close the gap.
                listed = self.list_channel_with_ytdlp()
            combined = {e.video_id: e for e in listed}
            # Feed entries carry publish times, which flat-listing entries lack.
            combined.update(
                (e.video_id, e) for e in feed if combined.get(e.video_id) is None or e.published_at
            )
            report["listed"] = listing_store.upsert_listed(conn, self.channel_url, combined.values())
            conn.commit()
            report["resolved"] = self._resolve_dates(conn)
            report["unresolved"] = len(listing_store.unresolved_ids(conn, self.channel_url))
        self._refreshed = True
        return report

    def _feed_or_nothing(self) -> list[FeedEntry]:
        try:
            return self.feed_entries()
        except YouTubeError:
            return []  # the feed only speeds things up; listing and resolving still work without it

    def _resolve_dates(self, conn: psycopg.Connection) -> int:
        pending = listing_store.unresolved_ids(conn, self.channel_url)
        if not pending:
            return 0
        resolved = 0
        if self.api_key:
            videos = self.videos_with_api(pending)
            dated = {v: video.published_at for v, video in videos.items() if video.published_at}
            listing_store.record_published(conn, dated)
            for video_id in set(pending) - set(dated):
                listing_store.record_resolve_error(
                    conn, video_id, "the Data API returned no such public video"
                )
            conn.commit()
            return len(dated)
        for video_id in pending:
            try:
                video = self.video_with_ytdlp(video_id)
            except TranscriptFailure as failure:
                if failure.failure_class is FailureClass.BLOCKED:
                    break  # leave the rest for the next run rather than hammer a throttled IP
                listing_store.record_resolve_error(conn, video_id, failure.message)
                conn.commit()
                continue
            if video.published_at is None:
                listing_store.record_resolve_error(conn, video_id, "yt-dlp metadata has no date")
            else:
                listing_store.record_published(conn, {video_id: video.published_at})
                resolved += 1
            conn.commit()
        return resolved

    def _ensure_listing(self) -> None:
        if not self._refreshed:
            self.refresh_listing()

    # -- VideoSource --------------------------------------------------------------------------

    def publish_dates(self) -> set[date]:
        self._ensure_listing()
        with self._connection() as conn:
            return listing_store.published_days(conn, self.channel_url)

    def videos_published_on(self, day: date) -> list[Video]:
        """The day's videos with full metadata. The listing's publish time is kept, so a video is
        never returned for a day other than the one it is stored under."""
        self._ensure_listing()
        with self._connection() as conn:
            rows = listing_store.listed_on(conn, self.channel_url, day)
        missing = [r.video_id for r in rows if r.video_id not in self._videos]
        if missing and self.api_key:
            self.videos_with_api(missing)
        videos = []
        for row in rows:
            video = self._videos.get(row.video_id)
            if video is None and not self.api_key:
                try:
                    video = self.video_with_ytdlp(row.video_id)
                except UnavailableVideo as failure:
                    video = self._video_from_row(row, availability=failure.availability or "deleted")
                except TranscriptFailure:
                    video = None
            if video is None:
                # Metadata could not be fetched now: keep what the listing knows, so the video is
                # still recorded; its captions step will meet (and record) the same problem.
                video = self._video_from_row(row)
            videos.append(replace(video, published_at=row.published_at, tags=list(video.tags)))
        return videos

    def _video_from_row(self, row: listing_store.ListedVideo, availability: str = "available") -> Video:
        feed = self._feed.get(row.video_id)
        return Video(
            video_id=row.video_id,
            source=self.name,
            title=row.title or (feed.title if feed else None) or row.video_id,
            published_at=row.published_at,
            description=feed.description if feed else None,
            thumbnail_url=feed.thumbnail_url if feed else None,
            channel_id=self.channel_id,
            url=watch_url(row.video_id),
            availability=availability,
        )

    def fetch_captions(self, video: Video) -> CaptionTrack:
        """youtube-transcript-api first, then yt-dlp's subtitles; manual over auto, English first.

        A definite answer from the first (no captions, unavailable) is final; when it is blocked or
        fails otherwise, yt-dlp is tried, and blocked wins over a generic error so no ASR is paid for.
        """
        try:
            return self._captions_with_transcript_api(video.video_id)
        except TranscriptFailure as first:
            if first.failure_class in (FailureClass.NO_CAPTIONS, FailureClass.UNAVAILABLE):
                raise
            try:
                return self._captions_with_ytdlp(video.video_id)
            except TranscriptFailure as second:
                if second.failure_class in (FailureClass.NO_CAPTIONS, FailureClass.UNAVAILABLE):
                    raise
                if FailureClass.BLOCKED in (first.failure_class, second.failure_class):
                    raise TranscriptFailure(
                        FailureClass.BLOCKED, f"{first.message}; then {second.message}"
                    ) from second
                raise TranscriptFailure(
                    FailureClass.ERROR, f"{first.message}; then {second.message}"
                ) from second

    def _captions_with_transcript_api(self, video_id: str) -> CaptionTrack:
        from chaffee_assets.ingest.captions import CaptionError, parse_captions

        self._throttle()
        try:
            api = self._transcript_api_factory()
            chosen = choose_transcript(list(api.list(video_id)))
            if chosen is None:
                raise TranscriptFailure(FailureClass.NO_CAPTIONS, f"video {video_id}: no transcripts listed")
            fetched = chosen.fetch()
        except TranscriptFailure:
            raise
        except Exception as exc:  # the library's own exception tree, classified by name
            raise failure_from_transcript_api(video_id, exc) from exc
        rows = [{"text": s.text, "start": s.start, "duration": s.duration} for s in fetched]
        source_name = f"youtube-transcript-api {chosen.language_code} transcript of {video_id}"
        try:
            cues = parse_captions(json.dumps(rows), "json", source_name=source_name)
        except CaptionError as exc:
            raise TranscriptFailure(FailureClass.ERROR, str(exc)) from exc
        if not cues:
            raise TranscriptFailure(FailureClass.NO_CAPTIONS, f"{source_name} holds no text")
        return CaptionTrack(
            cues=cues,
            source="auto_captions" if chosen.is_generated else "manual_captions",
            language=chosen.language_code,
            origin="youtube-transcript-api",
        )

    def _captions_with_ytdlp(self, video_id: str) -> CaptionTrack:
        from chaffee_assets.ingest.captions import CaptionError, parse_captions

        download_error = _download_error_type()
        self._throttle()
        try:
            with self._ydl_factory(self._ydl_options()) as ydl:
                info = ydl.extract_info(watch_url(video_id), download=False)
                availability = availability_of(info)
                if availability in ("live", "upcoming"):
                    raise UnavailableVideo(
                        f"video {video_id} is {availability}: no captions until it ends", availability
                    )
                choice = choose_subtitle(info)
                if choice is None:
                    raise TranscriptFailure(
                        FailureClass.NO_CAPTIONS, f"video {video_id}: yt-dlp lists no subtitles"
                    )
                self._throttle()
                data = ydl.urlopen(choice.url).read()
        except download_error as exc:
            raise failure_from_ytdlp_error(video_id, str(exc), doing="fetch subtitles") from exc
        kind = "auto" if choice.automatic else "manual"
        source_name = f"yt-dlp {kind} {choice.language} {choice.ext} subtitles of {video_id}"
        try:
            cues = parse_captions(data, choice.ext, source_name=source_name)
        except CaptionError as exc:
            raise TranscriptFailure(FailureClass.ERROR, str(exc)) from exc
        if not cues:
            raise TranscriptFailure(FailureClass.NO_CAPTIONS, f"{source_name} hold no text")
        return CaptionTrack(
            cues=cues,
            source="auto_captions" if choice.automatic else "manual_captions",
            language=choice.language,
            origin="yt-dlp",
        )

    def fetch_audio(self, video: Video, dest_dir: Path) -> Path:
        """The best audio-only stream (`bestaudio/best`, no video, no re-encoding) under `dest_dir`."""
        download_error = _download_error_type()
        dest_dir.mkdir(parents=True, exist_ok=True)
        options = self._ydl_options(
            skip_download=False,
            format="bestaudio/best",
            outtmpl={"default": str(dest_dir / "%(id)s.%(ext)s")},
            noplaylist=True,
            overwrites=True,
        )
        self._throttle()
        try:
            with self._ydl_factory(options) as ydl:
                info = ydl.extract_info(watch_url(video.video_id), download=False)
                availability = availability_of(info)
                if availability in ("live", "upcoming"):
                    # Downloading now would record a live stream for hours, or fail.
                    raise UnavailableVideo(
                        f"video {video.video_id} is {availability}: no audio until it ends", availability
                    )
                info = ydl.process_ie_result(info, download=True)
                downloads = info.get("requested_downloads") or []
                path = Path(downloads[0]["filepath"]) if downloads else Path(ydl.prepare_filename(info))
        except download_error as exc:
            raise failure_from_ytdlp_error(video.video_id, str(exc), doing="download its audio") from exc
        if not path.exists():
            raise TranscriptFailure(
                FailureClass.ERROR, f"video {video.video_id}: yt-dlp reported {path} but wrote no file there"
            )
        return path


def _api_error_reason(body: bytes) -> str:
    try:
        errors = json.loads(body)["error"]["errors"]
        return f" ({errors[0].get('reason')}: {errors[0].get('message')})"
    except (ValueError, KeyError, IndexError, TypeError):
        return ""
