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

# BM25's term-frequency saturation, the search's own k1: a word said three times in a stretch
# counts more than once, but not three times as much.
K1 = 0.9


@dataclass(frozen=True, slots=True)
class SeekRule:
    """How a link is placed inside its window. The defaults were chosen on `chapters` (hybrid) and
    confirmed on the other conditions (docs/retrieval.md, "Precise seek"; `bench/seek_lab.py`)."""

    # The stretch a question word opens, in seconds: about a sentence. 12 s against 8, 10, 15, 20, 30.
    span_s: float = 12.0
    # The earliest stretch scoring at least this share of the best wins (1.0: the best itself).
    lead: float = 1.0
    # The link leaves the window's start only for a stretch scoring (1 + margin) times the
    # stretch opening there (0: any best stretch moves it).
    margin: float = 0.0
    # From the chosen word, back to its sentence's start when punctuation lies within this many
    # words (about 3 s of speech); otherwise back `lead_in_s`, so the first words are heard.
    sentence_reach_words: int = 10
    lead_in_s: float = 1.0
    # The longest window whose words are placed by their share of its span: the segmenter cuts
    # 60 s windows on cue boundaries, so a longer one holds a cue of over 30 s (a paragraph-timed
    # transcript), whose words' seconds would be guesses; such a window keeps its start.
    word_timed_window_s: float = 90.0


DEFAULT_RULE = SeekRule()


@dataclass(frozen=True, slots=True)
class TimedCue:
    """A cue of a hit's window: its start and how often it says each of the question's lexemes."""

    start_s: float
    lexemes: Mapping[str, int]


def stretch_scores(
    cues: Sequence[TimedCue], weights: Mapping[str, float], *, span_s: float
) -> list[tuple[float, float]]:
    """(start, score) of the stretch each question-word cue opens, in time order."""
    ordered = sorted(cues, key=lambda cue: cue.start_s)
    return [
        (cue.start_s, _score_from(ordered, i, weights, span_s))
        for i, cue in enumerate(ordered)
        if cue.lexemes
    ]


def _score_from(
    ordered: Sequence[TimedCue], first: int, weights: Mapping[str, float], span_s: float
) -> float:
    """BM25 over the question's words said in the `span_s` seconds from cue `first` on."""
    held: dict[str, int] = {}
    for cue in ordered[first:]:
        if cue.start_s >= ordered[first].start_s + span_s:
            break
        for lexeme, count in cue.lexemes.items():
            held[lexeme] = held.get(lexeme, 0) + count
    return sum(weights.get(lexeme, 0.0) * tf * (K1 + 1) / (tf + K1) for lexeme, tf in held.items())


def best_start(
    cues: Sequence[TimedCue],
    weights: Mapping[str, float],
    *,
    window_start_s: float,
    rule: SeekRule = DEFAULT_RULE,
) -> float:
    """The second a link to this window should open at.

    `cues`: the window's cues in time order, each with the question's lexemes it holds;
    `weights`: each question lexeme's weight (its IDF). Only a cue that itself holds a question
    word may open the link, so the link never opens on silence or on the previous topic's last
    words. The earliest stretch scoring at least `rule.lead` of the best one wins (the best by
    default, the earliest among equals); with a `rule.margin`, only when it scores that much above
    the stretch opening at the window's start. Never before `window_start_s`.
    """
    scored = [
        (start, score) for start, score in stretch_scores(cues, weights, span_s=rule.span_s) if score > 0
    ]
    if not scored:
        return window_start_s
    top = max(score for _, score in scored)
    chosen, chosen_score = next((start, score) for start, score in scored if score >= rule.lead * top)
    if chosen > window_start_s and rule.margin > 0:
        opening = TimedCue(window_start_s, {})
        opening_score = _score_from(
            sorted([opening, *cues], key=lambda cue: cue.start_s), 0, weights, rule.span_s
        )
        if chosen_score < opening_score * (1 + rule.margin):
            return window_start_s
    return max(chosen, window_start_s)
