"""The YouTube channel as a `VideoSource` named "youtube": listing, publish dates, captions and audio.

How publish dates are found without a request per video per day:
1. The first run lists the whole channel once: the Data API's uploads playlist when an API key is
   given (50 ids and dates a request), else yt-dlp's flat listing of the /videos, /streams and
   /shorts tabs (ids and titles, no dates). Everything goes into `channel_listing`.
2. Dates still missing are resolved once ever: `videos.list` in batches of 50 with a key, else
   the RSS feed (the newest ~15), else one paced yt-dlp metadata request per video. Each result is
   committed as it comes, so an interrupted run keeps its progress.
3. Later runs ask only the RSS feed (one request) or the uploads playlist's first page for what is
   new, and list the whole channel again only when the feed holds nothing already known (a gap).

Network access sits behind three injected callables (an HTTP GET, a `YoutubeDL` factory and a
youtube-transcript-api factory), so everything here is tested on recorded yt-dlp output without
reaching YouTube. Every request waits its turn in one `Pacer`, which is also the only retry loop.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import date
from pathlib import Path

import psycopg

from chaffee_assets.error_text import one_line
from chaffee_assets.ingest import listing_store
from chaffee_assets.ingest.outcomes import FailureClass, TranscriptFailure
from chaffee_assets.ingest.sources import CaptionTrack
from chaffee_assets.ingest.videos import Video, watch_url
from chaffee_assets.ingest.youtube.captions import (
    TranscriptApiFactory,
    YouTubeCaptions,
    default_transcript_api_factory,
)
from chaffee_assets.ingest.youtube.data_api import DataApi
from chaffee_assets.ingest.youtube.errors import (
    UnavailableVideo,
    YouTubeError,
    api_error_reason,
    failure_from_ytdlp_error,
    is_worth_retrying,
)
from chaffee_assets.ingest.youtube.feed import FEED_URL, FeedEntry, parse_channel_feed
from chaffee_assets.ingest.youtube.pacing import Pacer
from chaffee_assets.ingest.youtube.ytdlp_listing import (
    CHANNEL_TABS,
    YdlFactory,
    YtDlp,
    default_ydl_factory,
    download_error_type,
)
from chaffee_assets.ingest.ytdlp_metadata import ListingEntry, availability_of

HttpGet = Callable[[str, Mapping[str, str]], tuple[int, bytes]]  # (url, query) → (status, body)

# yt-dlp format selectors. Speech recognition gets the best audio-only stream. Telling voices apart
# gets the smallest audio-only stream of at least 45 kb/s at 16 kHz or more (YouTube's 48 kb/s AAC
# or 50 kb/s Opus, against 130-160 for the best), without dynamic-range compression (the "-drc"
# copies flatten the loudness a voice is told by); each fallback widens the choice.
BEST_AUDIO = "bestaudio/best"
SMALLEST_AUDIO = (
    "worstaudio[abr>=45][asr>=16000][format_id!*=drc]/worstaudio[abr>=45][asr>=16000]"
    "/worstaudio[asr>=16000]/bestaudio/best"
)


def urllib_get(proxy: str | None = None, timeout_s: float = 30.0) -> HttpGet:
    """A plain GET through urllib (and the proxy); HTTP errors come back as their status."""
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


def _default_conn_factory() -> psycopg.Connection:
    from chaffee_assets.warehouse.migrate import ensure_schema
    from chaffee_assets.warehouse.server import connect

    return connect(ensure_schema())


class _RetryableStatus(Exception):
    """An HTTP answer worth asking again (429, 5xx) or a request that never got an answer."""


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
        self.pacer = Pacer(request_interval_s, max_retries, sleep=sleep, clock=clock)
        self.ytdlp = YtDlp(
            ydl_factory or default_ydl_factory, self.pacer, proxy=self.proxy, cookies_file=self.cookies_file
        )
        self.captions = YouTubeCaptions(
            transcript_api_factory or default_transcript_api_factory(self.proxy), self.ytdlp
        )
        self._refreshed = False
        self._videos: dict[str, Video] = {}  # full metadata fetched during this instance's life
        self._feed: dict[str, FeedEntry] = {}

    def _get(self, url: str, query: Mapping[str, str], what: str) -> bytes:
        """A paced GET, retried on 429, 5xx and network failures; `YouTubeError` when it gives up."""

        def request() -> bytes:
            try:
                status, body = self._http_get(url, query)
            except (OSError, urllib.error.URLError) as exc:  # no answer at all: DNS, refused, timeout
                raise _RetryableStatus(f"could not reach YouTube ({one_line(exc)})") from exc
            if status == 429 or status >= 500:
                raise _RetryableStatus(f"HTTP {status}")
            if status != 200:
                raise YouTubeError(
                    f"{what} failed with HTTP {status}{api_error_reason(body)}; check the channel id and API key"
                )
            return body

        try:
            return self.pacer.call(request, retry_if=lambda e: isinstance(e, _RetryableStatus))
        except _RetryableStatus as exc:
            raise YouTubeError(
                f"{what} still failed ({exc}) after {self.pacer.max_retries} retries: YouTube is throttling"
                " this IP or unreachable; try later, or set a proxy"
            ) from exc

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection]:
        with self._conn_factory() as conn:
            yield conn

    # -- listing ------------------------------------------------------------------------------

    def list_channel_with_ytdlp(self) -> list[ListingEntry]:
        """Every video on the channel's tabs (ids and titles; no dates) through one yt-dlp session."""
        entries, channel_id = self.ytdlp.list_channel(self.channel_url)
        self.channel_id = self.channel_id or channel_id
        return entries

    def feed_entries(self) -> list[FeedEntry]:
        """The newest ~15 videos with their publish times, from the channel's RSS feed (one request)."""
        if not self.channel_id:
            return []
        body = self._get(FEED_URL, {"channel_id": self.channel_id}, "the channel RSS feed")
        entries = parse_channel_feed(body)
        self._feed.update((e.video_id, e) for e in entries)
        return entries

    def _data_api(self) -> DataApi:
        return DataApi(self.api_key or "", self._get)

    def list_uploads_with_api(self, known: set[str] | None = None) -> list[ListingEntry]:
        """The uploads playlist with publish dates, 50 a request; stops at the first page of known ids."""
        if not self.channel_id:
            raise YouTubeError(f"the Data API needs the channel id of {self.channel_url}; set channel_id")
        return self._data_api().list_uploads(self.channel_id, known)

    def videos_with_api(self, video_ids: Sequence[str]) -> dict[str, Video]:
        """Full metadata for ids, 50 a request (`videos.list`)."""
        found = self._data_api().videos(video_ids)
        self._videos.update(found)
        return found

    def video_with_ytdlp(self, video_id: str) -> Video:
        """Full metadata of one video through yt-dlp (one request); `TranscriptFailure` when it cannot."""
        video = self.ytdlp.video(video_id, source=self.name)
        self._videos[video_id] = video
        return video

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
        """youtube-transcript-api first, then yt-dlp's subtitles; manual over auto, English first
        (see `chaffee_assets.ingest.youtube.captions`)."""
        return self.captions.fetch(video.video_id)

    def fetch_audio(self, video: Video, dest_dir: Path, *, smallest: bool = False) -> Path:
        """An audio-only stream, no video, no re-encoding, under `dest_dir`: the best one for speech
        recognition, or with `smallest` the lowest bitrate that serves telling voices apart
        (`SMALLEST_AUDIO`: a 16 kHz encoder, measured on 64 kb/s MP3; about a third of the bytes).

        A dropped connection is retried by the pacer; yt-dlp resumes from its `.part` file.
        """
        download_error = download_error_type()
        dest_dir.mkdir(parents=True, exist_ok=True)
        options = dict(
            skip_download=False,
            format=SMALLEST_AUDIO if smallest else BEST_AUDIO,
            outtmpl={"default": str(dest_dir / "%(id)s.%(ext)s")},
            noplaylist=True,
            overwrites=True,
        )
        try:
            with self.ytdlp.session(**options) as ydl:
                info = self.pacer.call(
                    lambda: ydl.extract_info(watch_url(video.video_id), download=False),
                    retry_if=lambda e: isinstance(e, download_error) and is_worth_retrying(str(e)),
                )
                availability = availability_of(info)
                if availability in ("live", "upcoming"):
                    # Downloading now would record a live stream for hours, or fail.
                    raise UnavailableVideo(
                        f"video {video.video_id} is {availability}: no audio until it ends", availability
                    )
                extracted = info
                downloaded = self.pacer.call(
                    lambda: ydl.process_ie_result(extracted, download=True),
                    retry_if=lambda e: isinstance(e, download_error) and is_worth_retrying(str(e)),
                )
                downloads = downloaded.get("requested_downloads") or []
                path = Path(downloads[0]["filepath"]) if downloads else Path(ydl.prepare_filename(downloaded))
        except download_error as exc:
            raise failure_from_ytdlp_error(video.video_id, str(exc), doing="download its audio") from exc
        if not path.exists():
            raise TranscriptFailure(
                FailureClass.ERROR, f"video {video.video_id}: yt-dlp reported {path} but wrote no file there"
            )
        return path
