"""Libraries for hostile-input tests, built in a temporary folder from real files in ../shared.

A real dev-library video (its info.json and English captions) is copied under any id and publish
time, with info.json fields replaced or removed and the caption file's bytes rewritten, the ways
real libraries and channels get them wrong.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from chaffee_assets_tests.conftest import shared_path

# Small real videos (a few KB of captions each), so a library of them ingests in seconds.
SMALL_VIDEOS = ("BMTt8gSl13s", "Gf-kC30SLtc", "LTGGyQS1fZE", "LYYyQcAJZfk")
REMOVE = object()  # as a field value: take the field out of the info.json


def dev_library() -> Path:
    return shared_path("eval", "huberman_dev", "library")


def real_caption(video_id: str) -> Path:
    [caption] = sorted(dev_library().glob(f"{video_id}.en.*"))
    return caption


def real_info(video_id: str) -> dict[str, Any]:
    return json.loads((dev_library() / f"{video_id}.info.json").read_text(encoding="utf-8"))


def copy_real_video(
    library: Path,
    real_id: str,
    *,
    published: datetime,
    as_id: str | None = None,
    fields: Mapping[str, Any] | None = None,
    caption: Callable[[bytes], bytes] | None = None,
) -> Path:
    """Copy a dev-library video into `library` as `as_id`, published at `published`.

    `fields` replace info.json fields (`REMOVE` takes one out) after the id and dates are set;
    `caption` rewrites the caption file's bytes. Returns the caption file written.
    """
    video_id = as_id or real_id
    info = real_info(real_id)
    for key in ("timestamp", "upload_date", "release_timestamp", "release_date"):
        info.pop(key, None)
    info.update(
        id=video_id,
        timestamp=int(published.timestamp()),
        upload_date=published.strftime("%Y%m%d"),
        webpage_url=f"https://www.youtube.com/watch?v={video_id}",
    )
    for key, value in (fields or {}).items():
        if value is REMOVE:
            info.pop(key, None)
        else:
            info[key] = value
    library.mkdir(parents=True, exist_ok=True)
    # allow_nan: a NaN or Infinity written by another program is part of what is tested.
    (library / f"{video_id}.info.json").write_text(json.dumps(info, allow_nan=True), encoding="utf-8")
    source = real_caption(real_id)
    data = source.read_bytes()
    target = library / f"{video_id}{source.name[len(real_id) :]}"
    target.write_bytes(caption(data) if caption else data)
    return target
