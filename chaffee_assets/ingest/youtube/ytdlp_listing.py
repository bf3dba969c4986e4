"""yt-dlp in process: the channel's tabs listed flat (ids and titles, no dates) and one video's metadata.

yt-dlp's own retries and request sleeps are off: every call goes through the source's `Pacer`, the
one mechanism that spaces and retries requests to YouTube.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from chaffee_assets.error_text import one_line
from chaffee_assets.ingest.outcomes import FailureClass, TranscriptFailure
from chaffee_assets.ingest.videos import Video, watch_url
from chaffee_assets.ingest.youtube.errors import YouTubeError, failure_from_ytdlp_error, is_worth_retrying
from chaffee_assets.ingest.youtube.pacing import Pacer
from chaffee_assets.ingest.ytdlp_metadata import ListingEntry, listing_entries_from_info, video_from_info

CHANNEL_TABS = ("videos", "streams", "shorts")

YdlFactory = Callable[[dict[str, Any]], Any]  # options → a YoutubeDL-like context manager


def download_error_type() -> type[Exception]:
    from yt_dlp.utils import DownloadError

    return DownloadError


def default_ydl_factory(options: dict[str, Any]) -> Any:
    import yt_dlp

    return yt_dlp.YoutubeDL(options)


class YtDlp:
    """yt-dlp sessions with the source's proxy and cookies, every request paced."""

    def __init__(
        self, factory: YdlFactory, pacer: Pacer, *, proxy: str | None = None, cookies_file: str | None = None
    ) -> None:
        self._factory = factory
        self.pacer = pacer
        self.proxy = proxy
        self.cookies_file = cookies_file

    def options(self, **extra: Any) -> dict[str, Any]:
        options: dict[str, Any] = {
            "quiet": True,
            "no_warnings": True,
            "noprogress": True,
            "skip_download": True,
            # One retry mechanism: the pacer. yt-dlp must not retry or sleep on its own.
            "retries": 0,
            "extractor_retries": 0,
            "fragment_retries": 0,
        }
        if self.proxy:
            options["proxy"] = self.proxy
        if self.cookies_file:
            options["cookiefile"] = self.cookies_file
        options.update(extra)
        return options

    @contextmanager
    def session(self, **extra: Any) -> Iterator[Any]:
        with self._factory(self.options(**extra)) as ydl:
            yield ydl

    def list_channel(self, channel_url: str) -> tuple[list[ListingEntry], str | None]:
        """Every video on the channel's tabs (ids and titles; no dates), and the channel id if seen."""
        download_error = download_error_type()
        entries: dict[str, ListingEntry] = {}
        channel_id: str | None = None
        with self.session(extract_flat="in_playlist") as ydl:
            for tab in CHANNEL_TABS:
                url = f"{channel_url}/{tab}"
                try:
                    info = self.pacer.call(
                        lambda url=url: ydl.extract_info(url, download=False),
                        retry_if=lambda e: isinstance(e, download_error) and is_worth_retrying(str(e)),
                    )
                except download_error as exc:
                    if "does not have a" in str(exc):  # e.g. "This channel does not have a shorts tab"
                        continue
                    raise YouTubeError(f"listing {url} with yt-dlp failed: {one_line(exc)}") from exc
                if isinstance(info, Mapping):
                    found = info.get("channel_id") or info.get("id")
                    channel_id = channel_id or (found if isinstance(found, str) else None)
                for entry in listing_entries_from_info(info, origin=url):
                    entries.setdefault(entry.video_id, entry)
        return list(entries.values()), channel_id

    def video(self, video_id: str, *, source: str) -> Video:
        """Full metadata of one video (one request, retried while throttled or dropped);
        `TranscriptFailure` when it cannot be had."""
        download_error = download_error_type()
        url = watch_url(video_id)
        try:
            with self.session(
                extractor_args={"youtube": {"skip": ["hls", "dash", "translated_subs"]}}
            ) as ydl:
                info = self.pacer.call(
                    lambda: ydl.extract_info(url, download=False),
                    retry_if=lambda e: isinstance(e, download_error) and is_worth_retrying(str(e)),
                )
        except download_error as exc:
            raise failure_from_ytdlp_error(video_id, str(exc), doing="read its metadata") from exc
        try:
            return video_from_info(info, source=source, origin=f"yt-dlp metadata of {video_id}")
        except ValueError as exc:  # MetadataError: not a single video's info dict
            raise TranscriptFailure(FailureClass.ERROR, one_line(exc)) from exc
