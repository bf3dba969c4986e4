"""A YouTube video's captions: youtube-transcript-api first, then the subtitles yt-dlp lists.

Manual over auto, English first. A definite answer from the first library (no captions,
unavailable) is final; when it is blocked or fails otherwise, yt-dlp is asked, and blocked wins over
a generic error so no speech recognition is paid for because of throttling. Neither is retried
here: a throttled video is recorded `blocked` and tried on a later day.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chaffee_assets.ingest.captions import CaptionError, parse_captions
from chaffee_assets.ingest.library import is_english
from chaffee_assets.ingest.outcomes import FailureClass, TranscriptFailure
from chaffee_assets.ingest.sources import CaptionTrack
from chaffee_assets.ingest.videos import watch_url
from chaffee_assets.ingest.youtube.errors import (
    UnavailableVideo,
    failure_from_transcript_api,
    failure_from_ytdlp_error,
)
from chaffee_assets.ingest.youtube.ytdlp_listing import YtDlp, download_error_type
from chaffee_assets.ingest.ytdlp_metadata import availability_of

TranscriptApiFactory = Callable[[], Any]  # → a YouTubeTranscriptApi-like object
_SUBTITLE_FORMATS = ("json3", "srv3", "vtt", "srt")  # json3/srv3: clean cues, no rolling duplicates


def default_transcript_api_factory(proxy: str | None) -> TranscriptApiFactory:
    def build() -> Any:
        from youtube_transcript_api import YouTubeTranscriptApi
        from youtube_transcript_api.proxies import GenericProxyConfig

        config = GenericProxyConfig(http_url=proxy, https_url=proxy) if proxy else None
        return YouTubeTranscriptApi(proxy_config=config)

    return build


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
            if not isinstance(language, str) or language == "live_chat" or not isinstance(formats, list):
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


class YouTubeCaptions:
    """Fetches a video's best captions through both libraries (see the module docstring)."""

    def __init__(self, transcript_api_factory: TranscriptApiFactory, ytdlp: YtDlp) -> None:
        self._transcript_api_factory = transcript_api_factory
        self._ytdlp = ytdlp

    def fetch(self, video_id: str) -> CaptionTrack:
        try:
            return self.with_transcript_api(video_id)
        except TranscriptFailure as first:
            if first.failure_class in (FailureClass.NO_CAPTIONS, FailureClass.UNAVAILABLE):
                raise
            try:
                return self.with_ytdlp(video_id)
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

    def with_transcript_api(self, video_id: str) -> CaptionTrack:
        def request() -> tuple[Any, Any]:
            api = self._transcript_api_factory()
            chosen = choose_transcript(list(api.list(video_id)))
            if chosen is None:
                raise TranscriptFailure(FailureClass.NO_CAPTIONS, f"video {video_id}: no transcripts listed")
            return chosen, chosen.fetch()

        try:
            chosen, fetched = self._ytdlp.pacer.call(request)
        except TranscriptFailure:
            raise
        except Exception as exc:  # the library's own exception tree, classified by name
            raise failure_from_transcript_api(video_id, exc) from exc
        rows = [{"text": s.text, "start": s.start, "duration": s.duration} for s in fetched]
        source_name = f"youtube-transcript-api {chosen.language_code} transcript of {video_id}"
        try:
            cues = parse_captions(json.dumps(rows), "json", source_name=source_name)
        except (CaptionError, ValueError, TypeError) as exc:
            raise TranscriptFailure(FailureClass.ERROR, f"{source_name}: {exc}") from exc
        if not cues:
            raise TranscriptFailure(FailureClass.NO_CAPTIONS, f"{source_name} holds no text")
        return CaptionTrack(
            cues=cues,
            source="auto_captions" if chosen.is_generated else "manual_captions",
            language=chosen.language_code,
            origin="youtube-transcript-api",
        )

    def with_ytdlp(self, video_id: str) -> CaptionTrack:
        download_error = download_error_type()
        pacer = self._ytdlp.pacer
        try:
            with self._ytdlp.session() as ydl:
                info = pacer.call(lambda: ydl.extract_info(watch_url(video_id), download=False))
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
                data = pacer.call(lambda: ydl.urlopen(choice.url).read())
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
