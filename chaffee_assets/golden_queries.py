"""Golden queries: questions whose answer is known in the operator's own library, and which file holds them.

A golden-queries file is JSON Lines, one question per line:

    {"question": "why avoid seed oils", "video_id": "smplSeedOil", "start_s": 12.0, "end_s": 48.5}

`video_id` is the video that answers it; `start_s`/`end_s` (optional) the seconds where the answer is
said. The `segment_embeddings_golden_queries_check` asks each question of the search once its video
is embedded, and fails when the video is not among the top hits: a regression in segmentation,
embedding or ranking shows up on questions the operator knows the answers to.

Which file: `CHAFFEE_GOLDEN_QUERIES`, else `golden_queries.jsonl` inside the library folder videos come
from (the bundled sample library has one, so the demo checks itself), else none — and the check is
skipped, saying why.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from chaffee_assets.settings import GOLDEN_QUERIES_FILE_NAME, Settings

NOT_CONFIGURED = (
    "no golden-queries file: set CHAFFEE_GOLDEN_QUERIES to a JSONL file of questions whose answers are known "
    f"in this library, or put {GOLDEN_QUERIES_FILE_NAME} in the library folder"
)


class GoldenQueriesError(ValueError):
    """The golden-queries file cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class GoldenQuery:
    question: str
    video_id: str
    start_s: float | None = None
    end_s: float | None = None


def golden_queries_path(config: Settings, library_dir: str | Path | None) -> Path | None:
    """The golden-queries file for a deployment whose videos come from `library_dir` (None: a channel)."""
    if config.golden_queries:
        return config.golden_queries
    if library_dir:
        candidate = Path(library_dir).expanduser() / GOLDEN_QUERIES_FILE_NAME
        if candidate.is_file():
            return candidate
    return None


def load_golden_queries(path: Path) -> list[GoldenQuery]:
    """Every question in the file; GoldenQueriesError naming the file (and line) when it is unusable."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise GoldenQueriesError(f"cannot read the golden-queries file {path}: {exc}") from None
    queries: list[GoldenQuery] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            if not isinstance(entry, dict):
                raise ValueError("not a JSON object")
            query = GoldenQuery(
                question=_text(entry, "question"),
                video_id=_text(entry, "video_id"),
                start_s=_seconds(entry, "start_s"),
                end_s=_seconds(entry, "end_s"),
            )
        except ValueError as exc:
            raise GoldenQueriesError(
                f"golden-queries file {path} line {number}: {exc} (expected a JSON object with "
                '"question" and "video_id", optionally "start_s" and "end_s")'
            ) from None
        queries.append(query)
    if not queries:
        raise GoldenQueriesError(f"the golden-queries file {path} holds no questions")
    return queries


def _text(entry: dict, key: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f'"{key}" is missing or empty')
    return value.strip()


def _seconds(entry: dict, key: str) -> float | None:
    value = entry.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f'"{key}" is not a number of seconds')
    return float(value)
