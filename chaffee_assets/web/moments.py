"""Searching for the web: hits as plain dicts, snippets with the matched words marked, grouped by video."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import psycopg

from chaffee_assets.cli.search_cmd import clock
from chaffee_assets.retrieval.embedder import Embedder
from chaffee_assets.search import search, snippets
from chaffee_assets.web.queries import SearchRequest

# Private-use characters mark the matched words: they never occur in captions, and the page turns
# them into <mark> elements *after* escaping the text, so no markup from the warehouse gets through.
MARK_START = "\ue000"
MARK_STOP = "\ue001"
SNIPPET_WORDS = 40


def find_hits(
    conn: psycopg.Connection, request: SearchRequest, *, model: str, embedder: Embedder | None
) -> list[dict[str, object]]:
    """The hits of `request`, best first, each as `Hit.as_dict()` gives it (every field passed through)."""
    hits = search(
        request.query,
        request.k,
        request.mode,
        model=model,
        published_from=request.published_from,
        published_to=request.published_to,
        conn=conn,
        embedder=embedder if request.mode != "text" else None,
        speaker=request.speaker,
    )
    return [hit.as_dict() for hit in hits]


def marked_snippets(conn: psycopg.Connection, query: str, hits: Sequence[dict[str, object]]) -> list[str]:
    """Each hit's text cut around the query's words, matched words between MARK_START and MARK_STOP."""
    texts = [str(hit["text"]).replace(MARK_START, "").replace(MARK_STOP, "") for hit in hits]
    return snippets(query, texts, conn=conn, start=MARK_START, stop=MARK_STOP, words=SNIPPET_WORDS)


def snippet_parts(snippet: str) -> list[tuple[str, bool]]:
    """(text, marked) pieces of a marked snippet, for the template to escape piece by piece."""
    parts: list[tuple[str, bool]] = []
    for i, chunk in enumerate(snippet.split(MARK_START)):
        if i == 0:
            if chunk:
                parts.append((chunk, False))
            continue
        marked, _, rest = chunk.partition(MARK_STOP)
        if marked:
            parts.append((marked, True))
        if rest:
            parts.append((rest, False))
    return parts


@dataclass
class Moment:
    video_id: str
    start_s: float
    end_s: float
    clock: str
    link: str
    parts: list[tuple[str, bool]]
    hit: dict[str, object]
    best: bool = False  # the video's best-ranked moment

    @property
    def start_second(self) -> int:
        return int(self.start_s)


@dataclass
class VideoResult:
    video_id: str
    title: str
    published_at: datetime | None
    moments: list[Moment] = field(default_factory=list)
    timeline: object | None = None  # a timelines.Timeline when the video's speakers are known


def group_by_video(hits: Sequence[dict[str, object]], marked: Sequence[str]) -> list[VideoResult]:
    """Videos in the order of their best hit; within a video, moments in the order they were said,
    the best-ranked one marked `best`."""
    videos: dict[str, VideoResult] = {}
    for hit, snippet in zip(hits, marked, strict=True):
        video_id = str(hit["video_id"])
        if video_id not in videos:
            videos[video_id] = VideoResult(
                video_id=video_id,
                title=str(hit["title"]),
                published_at=_when(hit.get("published_at")),
            )
        start = float(hit["start_s"])  # type: ignore[arg-type]
        videos[video_id].moments.append(
            Moment(
                video_id=video_id,
                start_s=start,
                end_s=float(hit["end_s"]),  # type: ignore[arg-type]
                clock=clock(start),
                link=str(hit["link"]),
                parts=snippet_parts(snippet),
                hit=dict(hit),
                best=not videos[video_id].moments,
            )
        )
    for video in videos.values():
        video.moments.sort(key=lambda m: m.start_s)
    return list(videos.values())


def _when(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value) if isinstance(value, str) else None
