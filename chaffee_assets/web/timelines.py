"""Who speaks when in a video, as the page draws it: a thin bar under the title, the host's turns solid,
everyone else's hatched, each moment on the page marked where it is said (docs/speakers.md)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import psycopg

from chaffee_assets.cli.search_cmd import clock

WIDTH = 1000.0  # the drawing's own units; the bar stretches to the column's width


@dataclass(frozen=True)
class Span:
    x: float
    width: float
    label: str  # read aloud and shown on hover


@dataclass(frozen=True)
class Timeline:
    host: list[Span]
    others: list[Span]
    moments: list[Span]
    summary: str  # the picture in words, for screen readers


_TURNS = """
SELECT t.video_id, t.start_s, t.end_s, t.speaker = p.name AS is_host, greatest(v.duration_s, m.last_end)
FROM speaker_turns t
JOIN speaker_labellings l ON l.video_id = t.video_id AND l.status <> 'unknown'
JOIN videos v ON v.video_id = t.video_id
JOIN (SELECT video_id, max(end_s) AS last_end FROM speaker_turns GROUP BY video_id) m ON m.video_id = t.video_id
LEFT JOIN speaker_profiles p ON p.is_host
WHERE t.video_id = ANY(%s)
ORDER BY t.video_id, t.start_s
"""


def speaker_timelines(
    conn: psycopg.Connection, moments_by_video: dict[str, Sequence[tuple[float, float]]]
) -> dict[str, Timeline]:
    """A timeline for each video whose speakers are known; videos without labels get none."""
    rows = conn.execute(_TURNS, (list(moments_by_video),)).fetchall()
    by_video: dict[str, list[tuple[float, float, bool]]] = {}
    lengths: dict[str, float] = {}
    for video_id, start, end, is_host, length in rows:
        by_video.setdefault(video_id, []).append((start, end, bool(is_host)))
        lengths[video_id] = float(length or end)
    return {
        video_id: _timeline(turns, lengths[video_id], moments_by_video[video_id])
        for video_id, turns in by_video.items()
        if lengths[video_id] > 0
    }


def _timeline(
    turns: Iterable[tuple[float, float, bool]], length: float, moments: Sequence[tuple[float, float]]
) -> Timeline:
    def span(start: float, end: float, who: str) -> Span:
        x = WIDTH * start / length
        return Span(
            round(x, 1),
            round(max(WIDTH * (end - start) / length, 1.0), 1),
            f"{who}, {clock(start)}–{clock(end)}",
        )

    host, others = [], []
    host_s = other_s = 0.0
    for start, end, is_host in turns:
        if is_host:
            host.append(span(start, end, "Dr Chaffee"))
            host_s += end - start
        else:
            others.append(span(start, end, "a guest or caller"))
            other_s += end - start
    marks = [span(start, start, "this moment") for start, _ in moments]
    spoken = host_s + other_s
    share = f"Dr Chaffee speaks {host_s / spoken:.0%} of the time" if spoken else "no speech found"
    return Timeline(
        host,
        others,
        marks,
        f"Who speaks when: {share}; {len(marks)} moment{'s' if len(marks) != 1 else ''} marked.",
    )
