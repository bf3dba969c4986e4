"""Where inside a hit's window the question is answered: the cue its link should open at (pure).

A hit is a window of about a minute, ranked as a whole; its first cue is often the end of the
previous topic. The question's own words mark where the answer is spoken: each cue that holds one
of them opens a short stretch, scored like BM25 over that stretch (each question word's IDF over
the library, its count in the stretch saturated), and the best stretch's first cue is where the
link opens. A window that holds none of the question's words (a hit found by
meaning alone) keeps its start. docs/retrieval.md, "Precise seek", has the measurements.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# The stretch a cue opens, in seconds: about one spoken sentence or two. 15 s was measured against
# 8 s and 30 s (docs/retrieval.md).
SPAN_S = 15.0
# BM25's term-frequency saturation, the search's own k1: a word said three times in a stretch
# counts more than once, but not three times as much.
K1 = 0.9


@dataclass(frozen=True, slots=True)
class TimedCue:
    """A cue of a hit's window: its start and how often it says each of the question's lexemes."""

    start_s: float
    lexemes: Mapping[str, int]


def best_start(
    cues: Sequence[TimedCue],
    weights: Mapping[str, float],
    *,
    window_start_s: float,
    span_s: float = SPAN_S,
) -> float:
    """The second a link to this window should open at.

    `cues`: the window's cues in time order, each with the question's lexemes it holds;
    `weights`: each question lexeme's weight (its IDF). Only a cue that itself holds a question
    word may open the link, so the link never opens on silence or on the previous topic's last
    words; among equal stretches the earliest wins. Never before `window_start_s`.
    """
    best_score = 0.0
    best = window_start_s
    ordered = sorted(cues, key=lambda cue: cue.start_s)
    for i, first in enumerate(ordered):
        if not first.lexemes:
            continue
        held: dict[str, int] = {}
        for cue in ordered[i:]:
            if cue.start_s >= first.start_s + span_s:
                break
            for lexeme, count in cue.lexemes.items():
                held[lexeme] = held.get(lexeme, 0) + count
        score = sum(weights.get(lexeme, 0.0) * tf * (K1 + 1) / (tf + K1) for lexeme, tf in held.items())
        if score > best_score:
            best_score, best = score, first.start_s
    return max(best, window_start_s)
