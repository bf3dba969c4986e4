"""A search as the page and the API receive it, checked by `chaffee_assets.search_input` (the limits and
messages the CLI shares)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from urllib.parse import urlencode

from chaffee_assets.search_input import (
    InputError,
    checked_k,
    checked_mode,
    checked_query,
    checked_range,
    day,
    refuse_control_characters,
    whole_number,
)

DEFAULT_K = 10

__all__ = [
    "DEFAULT_K",
    "InputError",
    "SearchRequest",
    "checked_search",
    "parsed_search",
    "refuse_control_characters",
]


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
    query = checked_query(query)
    checked_k(k)
    checked_mode(mode)
    checked_range(published_from, published_to)
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
    for what, raw in (("k", k), ("the mode", mode)):
        refuse_control_characters(what, raw)
    return checked_search(
        query or "",
        whole_number("k", k) if k and k.strip() else DEFAULT_K,
        (mode or "hybrid").strip() or "hybrid",
        optional_day("from", published_from),
        optional_day("to", published_to),
        (speaker or "").strip() or None,
    )


def optional_day(name: str, raw: str | None) -> date | None:
    """`day`, with a missing or blank value meaning no limit."""
    return day(name, raw) if raw is not None and raw.strip() else None
