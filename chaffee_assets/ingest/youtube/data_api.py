"""The YouTube Data API (with a key): the uploads playlist 50 videos a request, and full metadata for
50 ids a request (`videos.list`). Every field is checked on the way in, like any other source's."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from yt_dlp.utils import parse_duration

from chaffee_assets.ingest.validation import datetime_from_iso, media_seconds, text_or_none
from chaffee_assets.ingest.videos import Video, watch_url
from chaffee_assets.ingest.youtube.errors import YouTubeError
from chaffee_assets.ingest.ytdlp_metadata import ListingEntry

DATA_API = "https://www.googleapis.com/youtube/v3"
API_BATCH = 50  # the Data API's maximum ids per videos.list call

# (url, query, what it is for) -> the response body; raises YouTubeError when it cannot be had.
PacedGet = Callable[[str, Mapping[str, str], str], bytes]


def parse_iso8601_duration(value: Any) -> float | None:
    """Seconds in a Data API duration such as `PT1H52M55S` (read by yt-dlp's parser); None for the
    `P0D` of an upcoming stream and for anything that cannot be a video's length."""
    if not isinstance(value, str):
        return None
    return media_seconds(parse_duration(value))


def uploads_playlist_id(channel_id: str) -> str:
    """A channel's uploads playlist: its id with `UC` swapped for `UU` (saves a channels.list call)."""
    if not channel_id.startswith("UC"):
        raise ValueError(f"{channel_id!r} is not a channel id (UC…)")
    return "UU" + channel_id[2:]


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def parse_playlist_items(page: Any) -> tuple[list[ListingEntry], str | None]:
    """Listing entries of one `playlistItems.list` page (part=snippet,contentDetails) and the next token."""
    page = _mapping(page)
    items = page.get("items")
    entries = []
    for item in items if isinstance(items, list) else []:
        item = _mapping(item)
        details, snippet = _mapping(item.get("contentDetails")), _mapping(item.get("snippet"))
        video_id = text_or_none(details.get("videoId")) or text_or_none(
            _mapping(snippet.get("resourceId")).get("videoId")
        )
        if not video_id:
            continue
        title = text_or_none(snippet.get("title"))
        availability = {"Private video": "private", "Deleted video": "deleted"}.get(title or "", "available")
        entries.append(
            ListingEntry(
                video_id=video_id,
                title=title,
                published_at=datetime_from_iso(details.get("videoPublishedAt")),
                availability=availability,
                channel_id=text_or_none(snippet.get("videoOwnerChannelId"))
                or text_or_none(snippet.get("channelId")),
            )
        )
    token = page.get("nextPageToken")
    return entries, token if isinstance(token, str) and token else None


def video_from_api_item(item: Mapping[str, Any]) -> Video:
    """A `Video` from one `videos.list` item (part=snippet,contentDetails,status,liveStreamingDetails).

    ValueError for an item without an id.
    """
    video_id = text_or_none(item.get("id"))
    if not video_id:
        raise ValueError("a videos.list item has no id")
    snippet, status = _mapping(item.get("snippet")), _mapping(item.get("status"))
    live = snippet.get("liveBroadcastContent")
    availability = {"live": "live", "upcoming": "upcoming"}.get(
        live if isinstance(live, str) else "", "available"
    )
    if status.get("privacyStatus") == "private":
        availability = "private"
    thumbnails = _mapping(snippet.get("thumbnails"))
    thumbnail = next(
        (
            text_or_none(_mapping(thumbnails[k]).get("url"))
            for k in ("maxres", "standard", "high", "medium", "default")
            if k in thumbnails
        ),
        None,
    )
    tags = snippet.get("tags")
    return Video(
        video_id=video_id,
        source="youtube",
        title=text_or_none(snippet.get("title")) or video_id,
        published_at=datetime_from_iso(snippet.get("publishedAt")),
        description=text_or_none(snippet.get("description"), multiline=True),
        duration_s=parse_iso8601_duration(_mapping(item.get("contentDetails")).get("duration")),
        channel=text_or_none(snippet.get("channelTitle")),
        channel_id=text_or_none(snippet.get("channelId")),
        tags=[t for t in (text_or_none(tag) for tag in tags) if t] if isinstance(tags, list) else [],
        thumbnail_url=thumbnail,
        url=watch_url(video_id),
        availability=availability,
        language=text_or_none(snippet.get("defaultAudioLanguage"))
        or text_or_none(snippet.get("defaultLanguage")),
    )


class DataApi:
    """The two Data API calls the source needs, through the source's paced GET."""

    def __init__(self, api_key: str, get: PacedGet) -> None:
        self.api_key = api_key
        self._get = get

    def _call(self, resource: str, query: dict[str, str]) -> Any:
        body = self._get(f"{DATA_API}/{resource}", {**query, "key": self.api_key}, f"Data API {resource}")
        try:
            return json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise YouTubeError(f"Data API {resource} answered something that is not JSON ({exc})") from exc

    def list_uploads(self, channel_id: str, known: set[str] | None = None) -> list[ListingEntry]:
        """The uploads playlist with publish dates, 50 a request; stops at the first page of known ids."""
        entries: list[ListingEntry] = []
        token: str | None = None
        while True:
            query = {
                "part": "contentDetails,snippet",
                "playlistId": uploads_playlist_id(channel_id),
                "maxResults": str(API_BATCH),
            }
            if token:
                query["pageToken"] = token
            page_entries, token = parse_playlist_items(self._call("playlistItems", query))
            entries.extend(page_entries)
            if not token or (known is not None and all(e.video_id in known for e in page_entries)):
                return entries

    def videos(self, video_ids: Sequence[str]) -> dict[str, Video]:
        """Full metadata for ids, 50 a request; items that are not a video's are passed over."""
        found: dict[str, Video] = {}
        for start in range(0, len(video_ids), API_BATCH):
            batch = video_ids[start : start + API_BATCH]
            query = {"part": "snippet,contentDetails,status,liveStreamingDetails", "id": ",".join(batch)}
            items = _mapping(self._call("videos", query)).get("items")
            for item in items if isinstance(items, list) else []:
                try:
                    video = video_from_api_item(_mapping(item))
                except ValueError:
                    continue
                found[video.video_id] = video
        return found
