"""What it takes to be a `VideoSource`, checked on a real instance: every member, with its signature."""

from __future__ import annotations

import inspect

from chaffee_assets.ingest.sources import VideoSource

MEMBERS = ("videos_published_on", "publish_dates", "fetch_captions", "fetch_audio")


def contract_problems(source: object) -> list[str]:
    """Why `source` is not a VideoSource (empty when it is one)."""
    if not isinstance(source, VideoSource):
        return [f"{type(source).__name__} lacks a member of VideoSource"]
    problems = []
    if not isinstance(getattr(source, "name", None), str):
        problems.append("name is not a string")
    for member in MEMBERS:
        wanted = list(inspect.signature(getattr(VideoSource, member)).parameters)[1:]  # without self
        found = list(inspect.signature(getattr(source, member)).parameters)
        if found != wanted:
            problems.append(f"{member}{tuple(found)} differs from VideoSource.{member}{tuple(wanted)}")
    return problems
