"""Signs that a transcript is wrong: too short for its video, out of order, or a Whisper loop.

Pure functions over cues, used by the asset checks. Thresholds are deliberately loose: they flag
transcripts a person should look at, not ones that are merely imperfect.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from chaffee_assets.ingest.cues import Cue

# Captions often stop before an outro of music or end screens; below half the video is suspicious.
MIN_COVERAGE = 0.5
# After Whisper's own rule (openai/whisper `compression_ratio_threshold=2.4` per 30 s window): text
# that zlib squeezes this much is a repetition loop. Applied per window of words, since a whole
# transcript always compresses well; 3.0 because real captions reach ~2.6 on 100-word windows.
MAX_COMPRESSION_RATIO = 3.0
COMPRESSION_WINDOW_WORDS = 100
# A phrase of up to MAX_PHRASE_WORDS said LOOP_MIN_REPEATS times in a row, over at least
# LOOP_MIN_WORDS words, is a decoding loop. Real speech repeats short things ("look, look, look…",
# "steak and steak and steak and…": up to 12 words in the evaluation captions), never whole sentences.
MAX_PHRASE_WORDS = 12
LOOP_MIN_REPEATS = 4
LOOP_MIN_WORDS = 24


@dataclass(frozen=True, slots=True)
class QualityIssue:
    kind: str  # 'coverage' | 'order' | 'repetition' | 'compression'
    detail: str


def coverage(cues: Sequence[Cue], duration_s: float | None) -> float | None:
    """Fraction of the video's duration the transcript reaches (its last cue's end)."""
    if not duration_s or duration_s <= 0:
        return None
    if not cues:
        return 0.0
    return min(1.0, max(c.end for c in cues) / duration_s)


def out_of_order_count(cues: Sequence[Cue]) -> int:
    """Cues that start before the previous cue."""
    return sum(1 for prev, cur in zip(cues, cues[1:], strict=False) if cur.start < prev.start)


def compression_ratio(text: str) -> float:
    raw = text.encode("utf-8")
    if not raw:
        return 0.0
    return len(raw) / len(zlib.compress(raw))


def max_window_compression_ratio(words: Sequence[str], window: int = COMPRESSION_WINDOW_WORDS) -> float:
    """The highest compression ratio over consecutive windows of `window` words (half-overlapping)."""
    if len(words) < window:
        return compression_ratio(" ".join(words)) if len(words) >= window // 2 else 0.0
    step = window // 2
    return max(
        compression_ratio(" ".join(words[i : i + window])) for i in range(0, len(words) - window + 1, step)
    )


def longest_loop(words: Sequence[str], max_phrase: int = MAX_PHRASE_WORDS) -> tuple[int, int]:
    """(repeats, words) of the longest stretch where one phrase of up to `max_phrase` words repeats
    back to back; (1, 0) when nothing repeats.

    A phrase of p words repeated k times makes a stretch where every word equals the word p
    positions earlier; its length is p * (k - 1).
    """
    best = (1, 0)
    for period in range(1, max_phrase + 1):
        matched = 0
        for i in range(period, len(words)):
            matched = matched + 1 if words[i] == words[i - period] else 0
            repeats = 1 + matched // period
            if repeats > 1 and repeats * period > best[1]:
                best = (repeats, repeats * period)
    return best


def transcript_issues(
    cues: Sequence[Cue], duration_s: float | None, *, check_loops: bool
) -> list[QualityIssue]:
    """Everything suspicious about one transcript. `check_loops` for speech-recognition output."""
    issues: list[QualityIssue] = []
    cov = coverage(cues, duration_s)
    if cov is not None and cov < MIN_COVERAGE:
        issues.append(QualityIssue("coverage", f"ends at {cov:.0%} of the video's {duration_s:.0f} s"))
    disorder = out_of_order_count(cues)
    if disorder:
        issues.append(QualityIssue("order", f"{disorder} cue(s) start before the previous one"))
    if check_loops and cues:
        words = " ".join(c.text for c in cues).lower().split()
        repeats, span = longest_loop(words)
        if repeats >= LOOP_MIN_REPEATS and span >= LOOP_MIN_WORDS:
            issues.append(
                QualityIssue("repetition", f"a phrase repeats {repeats} times in a row ({span} words)")
            )
        ratio = max_window_compression_ratio(words)
        if ratio > MAX_COMPRESSION_RATIO:
            issues.append(
                QualityIssue(
                    "compression", f"a {COMPRESSION_WINDOW_WORDS}-word window compresses {ratio:.2f}x"
                )
            )
    return issues
