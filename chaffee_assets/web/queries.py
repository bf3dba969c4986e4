"""A search as the page and the API receive it: checked once, with one-line messages for bad input."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from urllib.parse import urlencode

from chaffee_assets.search import MODES
from chaffee_assets.web.settings import MAX_K, MAX_QUERY_CHARS

DEFAULT_K = 10


class InputError(ValueError):
    """A request the server will not run; the message says what to change."""


@dataclass(frozen=True)
class SearchRequest:
    query: str
    k: int = DEFAULT_K
    mode: str = "hybrid"
    published_from: date | None = None
    published_to: date | None = None
    speaker: str | None = None  # "host": only moments where the host speaks (docs/speakers.md)

    def url_params(self, **changes: object) -> str:
        """The page's query string for this search (defaults left out), so a search can be shared."""
        values: dict[str, object] = {
            "q": self.query,
            "k": self.k if self.k != DEFAULT_K else None,
            "mode": self.mode if self.mode != "hybrid" else None,
            "from": self.published_from.isoformat() if self.published_from else None,
            "to": self.published_to.isoformat() if self.published_to else None,
            "speaker": self.speaker,
        }
        values.update(changes)
        return urlencode({key: value for key, value in values.items() if value not in (None, "")})


def checked_search(
    query: str,
    k: int = DEFAULT_K,
    mode: str = "hybrid",
    published_from: date | None = None,
    published_to: date | None = None,
    speaker: str | None = None,
) -> SearchRequest:
    """The request, or InputError: empty or over-long question, k out of range, unknown mode, dates
    reversed, unknown speaker filter."""
    query = " ".join(query.split())
    if not query:
        raise InputError("the question is empty: type a few words")
    if len(query) > MAX_QUERY_CHARS:
        raise InputError(f"the question is {len(query)} characters long; the limit is {MAX_QUERY_CHARS}")
    if not 1 <= k <= MAX_K:
        raise InputError(f"k must be between 1 and {MAX_K}, not {k}")
    if mode not in MODES:
        raise InputError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if published_from and published_to and published_from > published_to:
        raise InputError(f"the 'from' date {published_from} is after the 'to' date {published_to}")
    if speaker not in (None, "", "host"):
        raise InputError(f"speaker can only be 'host', not {speaker!r}")
    return SearchRequest(query, k, mode, published_from, published_to, speaker or None)


def parsed_search(
    query: str | None,
    k: str | None,
    mode: str | None,
    published_from: str | None,
    published_to: str | None,
    speaker: str | None = None,
) -> SearchRequest:
    """`checked_search` from a form's strings (the page's query string), blanks meaning the default."""
    return checked_search(
        query or "",
        _whole("k", k, DEFAULT_K),
        (mode or "hybrid").strip() or "hybrid",
        _day("from", published_from),
        _day("to", published_to),
        (speaker or "").strip() or None,
    )


def _whole(name: str, raw: str | None, default: int) -> int:
    if raw is None or not raw.strip():
        return default
    try:
        return int(raw.strip())
    except ValueError:
        raise InputError(f"{name} must be a whole number, not {raw[:40]!r}") from None


def _day(name: str, raw: str | None) -> date | None:
    if raw is None or not raw.strip():
        return None
    try:
        return date.fromisoformat(raw.strip())
    except ValueError:
        raise InputError(f"the '{name}' date must be YYYY-MM-DD, not {raw[:40]!r}") from None
