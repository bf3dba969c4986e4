"""The channel's RSS feed (`/feeds/videos.xml?channel_id=…`): the newest ~15 videos with publish times,
in one request and without an API key."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime

from chaffee_assets.ingest.validation import datetime_from_iso, text_or_none
from chaffee_assets.ingest.youtube.errors import YouTubeError
from chaffee_assets.ingest.ytdlp_metadata import ListingEntry

FEED_URL = "https://www.youtube.com/feeds/videos.xml"

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


def parse_channel_feed(xml: bytes | str) -> list[FeedEntry]:
    """Entries of a channel's Atom feed, newest first as served; every field checked on the way in
    (an impossible date is None, text is cleaned)."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise YouTubeError(
            f"the channel RSS feed is not valid XML ({exc}); YouTube may have served an error page"
        ) from exc
    entries = []
    for node in root.findall("atom:entry", _NS):
        video_id = text_or_none(node.findtext("yt:videoId", namespaces=_NS))
        if not video_id:
            continue
        thumb = node.find("media:group/media:thumbnail", _NS)
        entries.append(
            FeedEntry(
                video_id=video_id,
                title=text_or_none(node.findtext("atom:title", namespaces=_NS)),
                published_at=datetime_from_iso(node.findtext("atom:published", namespaces=_NS)),
                updated_at=datetime_from_iso(node.findtext("atom:updated", namespaces=_NS)),
                thumbnail_url=text_or_none(thumb.get("url")) if thumb is not None else None,
                description=text_or_none(
                    node.findtext("media:group/media:description", namespaces=_NS), multiline=True
                ),
                channel_id=text_or_none(node.findtext("yt:channelId", namespaces=_NS)),
            )
        )
    return entries
