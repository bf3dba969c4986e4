"""Checking each value a source gives about a video before it reaches the warehouse.

Sources (an info.json, a channel listing, the RSS feed, the Data API, a caption file) are written by
other programs and sometimes by hand. Every value read from them passes through these functions:
text is cleaned of what PostgreSQL cannot store and a terminal should not receive (NUL and other
control characters, unpaired surrogates); a number or date that cannot be true is dropped, and the
caller notes which file and field it was. One impossible field never costs a video, and one video
never costs its day.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from chaffee_assets.ingest.cues import MAX_MEDIA_SECONDS

# The oldest recording worth importing is older than YouTube; nothing was recorded before 1900.
EARLIEST_PUBLISHED = datetime(1900, 1, 1, tzinfo=UTC)
# Premieres and streams are scheduled weeks ahead, never years.
LATEST_PUBLISHED_AHEAD = timedelta(days=366)

# C0 controls except tab and line breaks, DEL, and the C1 block: never part of a title or caption,
# and the ESC (or CSI) that starts a terminal escape sequence is among them.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_LINE_SPACE = re.compile(r"[\t\r\n\u2028\u2029]+")


def clean_text(value: str, *, multiline: bool = False) -> str:
    """`value` without control characters or unpaired surrogates; one line unless `multiline`.

    A JSON file may spell `"\\u0000"` or a lone `"\\ud800"`: PostgreSQL text refuses the first,
    UTF-8 cannot encode the second (it becomes U+FFFD).
    """
    text = _CONTROL.sub("", value)
    if not text.isascii():
        # Through UTF-16, an unpaired surrogate becomes one U+FFFD and a split pair is joined.
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    if not multiline:
        text = _LINE_SPACE.sub(" ", text)
    return text.strip()


def text_or_none(value: Any, *, multiline: bool = False) -> str | None:
    """A non-empty cleaned string, or None for anything else (missing, a number, blank)."""
    if not isinstance(value, str):
        return None
    return clean_text(value, multiline=multiline) or None


def finite_number(value: Any) -> float | None:
    """A JSON number (or numeric string) as a finite float; None for NaN, infinities, booleans, text."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def media_seconds(value: Any) -> float | None:
    """A video's length in seconds when it can be one: finite, above 0 and at most a week."""
    seconds = finite_number(value)
    if seconds is None or seconds <= 0 or seconds > MAX_MEDIA_SECONDS:
        return None
    return seconds


def plausible_published(when: datetime | None, *, now: datetime | None = None) -> datetime | None:
    """`when` in UTC if a video can have been published then (1900 … a year from now), else None."""
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    try:
        when = when.astimezone(UTC)
    except (OverflowError, ValueError):
        return None
    latest = (now or datetime.now(UTC)) + LATEST_PUBLISHED_AHEAD
    return when if EARLIEST_PUBLISHED <= when <= latest else None


def datetime_from_epoch(value: Any) -> datetime | None:
    """A Unix timestamp as a UTC datetime, or None when it is not a possible publish time."""
    seconds = finite_number(value) if not isinstance(value, str) else None
    if seconds is None:
        return None
    try:
        when = datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None
    return plausible_published(when)


def datetime_from_iso(value: Any) -> datetime | None:
    """An ISO 8601 instant (`2024-03-01T10:00:00Z`; no zone means UTC) as UTC, or None."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return plausible_published(parsed)


def datetime_from_yyyymmdd(value: Any) -> datetime | None:
    """yt-dlp's `upload_date` (`20240301`) as midnight UTC, or None."""
    if not isinstance(value, str) or len(value) != 8 or not value.isdigit():
        return None
    try:
        day = datetime.strptime(value, "%Y%m%d")
    except ValueError:
        return None
    return plausible_published(day.replace(tzinfo=UTC))


def shown(value: Any, limit: int = 40) -> str:
    """A value as an error message quotes it: repr (so control characters show as escapes), shortened."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
