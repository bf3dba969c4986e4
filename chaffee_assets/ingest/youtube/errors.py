"""What YouTube's answers mean for a video: yt-dlp messages and youtube-transcript-api exceptions
read as failure classes (blocked, no captions, unavailable with its availability, error)."""

from __future__ import annotations

import json

from chaffee_assets.error_text import one_line, redact
from chaffee_assets.ingest.outcomes import FailureClass, TranscriptFailure


class YouTubeError(RuntimeError):
    """YouTube could not be asked at all (listing failed, quota exhausted); the message says what to do."""


class UnavailableVideo(TranscriptFailure):
    """UNAVAILABLE with the availability it implies (private, deleted, members_only, live, upcoming)."""

    def __init__(self, message: str, availability: str | None) -> None:
        super().__init__(FailureClass.UNAVAILABLE, message)
        self.availability = availability


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

# A dropped or refused connection while yt-dlp talked to YouTube: the same request can succeed later.
_NETWORK_NEEDLES = (
    "timed out",
    "connection reset",
    "connection refused",
    "connection aborted",
    "remote end closed",
    "incompleteread",
    "temporary failure in name resolution",
    "network is unreachable",
    "http error 500",
    "http error 502",
    "http error 503",
    "http error 504",
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


def is_worth_retrying(message: str) -> bool:
    """Whether a yt-dlp error can go away by itself: throttling, or the network dropping a request."""
    text = message.lower()
    return classify_ytdlp_error(message)[0] is FailureClass.BLOCKED or any(
        n in text for n in _NETWORK_NEEDLES
    )


def failure_from_ytdlp_error(video_id: str, message: str, *, doing: str) -> TranscriptFailure:
    failure_class, availability = classify_ytdlp_error(message)
    # yt-dlp names the proxy it went through, credentials and all: never keep those.
    text = f"video {video_id}: yt-dlp could not {doing}: {one_line(message) if message.strip() else 'no message'}"
    if failure_class is FailureClass.UNAVAILABLE:
        return UnavailableVideo(text, availability)
    if failure_class is FailureClass.BLOCKED:
        text += " (YouTube is throttling this IP: wait, or set a proxy or a cookies file)"
    return TranscriptFailure(failure_class, text)


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
    first_line = one_line(exc)
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
                return TranscriptFailure(FailureClass.BLOCKED, f"{text}: {redact(reason.strip())}")
            return UnavailableVideo(f"{text}: {redact(reason.strip()) or first_line}", availability)
        if failure_class is FailureClass.UNAVAILABLE:
            return UnavailableVideo(text, availability)
        return TranscriptFailure(failure_class, text)
    if type(exc).__name__ == "YouTubeRequestFailed" and "429" in str(getattr(exc, "reason", exc)):
        return TranscriptFailure(FailureClass.BLOCKED, f"video {video_id}: HTTP 429 from YouTube")
    return TranscriptFailure(FailureClass.ERROR, f"video {video_id}: youtube-transcript-api: {first_line}")


def api_error_reason(body: bytes) -> str:
    """` (reason: message)` from a Data API error document, or nothing when it is not one."""
    try:
        errors = json.loads(body)["error"]["errors"]
        return f" ({errors[0].get('reason')}: {errors[0].get('message')})"
    except (ValueError, KeyError, IndexError, TypeError, RecursionError):
        return ""
