"""What a search may ask, checked once for every face (the page, the API and `chaffee search`), with
one message per mistake: the question's length, k's range, the mode, and dates as YYYY-MM-DD only."""

from __future__ import annotations

import re
import unicodedata
from datetime import date

from chaffee_assets.search import MODES

MAX_K = 50
MAX_QUERY_CHARS = 300

_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


class InputError(ValueError):
    """A search that will not run; the message says what to change, in one line."""


def refuse_control_characters(what: str, text: str | None) -> None:
    """InputError when `text` holds a NUL or another control character (none belongs in a search)."""
    for character in text or "":
        if unicodedata.category(character) == "Cc":
            raise InputError(f"{what} contains a control character (U+{ord(character):04X}); remove it")


def without_control_characters(text: str) -> str:
    """`text` with its control characters left out: how a refused value is shown back to the visitor."""
    return "".join(character for character in text if unicodedata.category(character) != "Cc")


def checked_query(query: str) -> str:
    """The question with its spacing collapsed, or InputError: control characters, empty, too long."""
    query = " ".join(query.split())
    refuse_control_characters("the question", query)
    if not query:
        raise InputError("the question is empty: type a few words")
    if len(query) > MAX_QUERY_CHARS:
        raise InputError(f"the question is {len(query)} characters long; the limit is {MAX_QUERY_CHARS}")
    return query


def checked_k(k: int) -> int:
    if not 1 <= k <= MAX_K:
        raise InputError(f"k must be between 1 and {MAX_K}, not {k}")
    return k


def checked_mode(mode: str) -> str:
    if mode not in MODES:
        raise InputError(f"mode must be one of {', '.join(MODES)}, not {mode[:40]!r}")
    return mode


def whole_number(name: str, raw: str) -> int:
    try:
        return int(raw.strip())
    except ValueError:
        raise InputError(f"{name} must be a whole number, not {raw[:40]!r}") from None


def day(name: str, raw: str) -> date:
    """A calendar day written YYYY-MM-DD (no time, no week dates), or InputError naming `name`."""
    refuse_control_characters(f"the '{name}' date", raw)
    text = raw.strip()
    try:
        if not _ISO_DAY.fullmatch(text):
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        raise InputError(f"the '{name}' date must be YYYY-MM-DD, not {raw[:40]!r}") from None


def checked_range(published_from: date | None, published_to: date | None) -> None:
    if published_from and published_to and published_from > published_to:
        raise InputError(f"the 'from' date {published_from} is after the 'to' date {published_to}")
