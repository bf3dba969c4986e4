"""The YouTube channel as a video source, one module per seam.

- `source`: `YouTubeSource`, the `VideoSource` that lists the channel, remembers it in
  `channel_listing`, and fetches captions and audio;
- `pacing`: `Pacer`, the one place requests are spaced and retried;
- `feed`: the channel's RSS feed; `data_api`: the Data API; `ytdlp_listing`: yt-dlp's flat listing
  and per-video metadata; `captions`: youtube-transcript-api and yt-dlp subtitles;
- `errors`: what YouTube's answers mean as failure classes.
"""

from chaffee_assets.ingest.youtube.captions import SubtitleChoice, choose_subtitle, choose_transcript
from chaffee_assets.ingest.youtube.data_api import (
    DATA_API,
    parse_iso8601_duration,
    parse_playlist_items,
    uploads_playlist_id,
    video_from_api_item,
)
from chaffee_assets.ingest.youtube.errors import (
    UnavailableVideo,
    YouTubeError,
    classify_ytdlp_error,
    failure_from_transcript_api,
    failure_from_ytdlp_error,
)
from chaffee_assets.ingest.youtube.feed import FEED_URL, FeedEntry, parse_channel_feed
from chaffee_assets.ingest.youtube.pacing import Pacer
from chaffee_assets.ingest.youtube.source import YouTubeSource, normalise_channel_url, urllib_get

__all__ = [
    "DATA_API",
    "FEED_URL",
    "FeedEntry",
    "Pacer",
    "SubtitleChoice",
    "UnavailableVideo",
    "YouTubeError",
    "YouTubeSource",
    "choose_subtitle",
    "choose_transcript",
    "classify_ytdlp_error",
    "failure_from_transcript_api",
    "failure_from_ytdlp_error",
    "normalise_channel_url",
    "parse_channel_feed",
    "parse_iso8601_duration",
    "parse_playlist_items",
    "uploads_playlist_id",
    "urllib_get",
    "video_from_api_item",
]
