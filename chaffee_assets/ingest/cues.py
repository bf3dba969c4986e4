"""The normalised unit every transcript is made of: a timed piece of text."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# No video or recording runs for a week: a time past this is a broken file, not speech. Every time
# that reaches the warehouse is bounded by it (migration 0004 enforces the same bound), which also
# keeps a deep link's `t=` seconds far inside PostgreSQL's bigint.
MAX_MEDIA_SECONDS = 7 * 24 * 3600.0


@dataclass(frozen=True, slots=True)
class Cue:
    """A span of speech: seconds from the start of the video, and what was said."""

    start: float
    end: float
    text: str

    def as_dict(self) -> dict[str, float | str]:
        return {"start": round(self.start, 3), "end": round(self.end, 3), "text": self.text}


# Captions may run a few seconds past a duration rounded to whole seconds (or measured on another
# encoding of the same video); further than this, a cue belongs to no moment of the video.
DURATION_SLACK_S = 10.0


def cues_within(cues: Iterable[Cue], duration_s: float | None) -> list[Cue]:
    """The cues that fall inside a video of `duration_s` seconds (all of them when it is unknown).

    A cue starting past the end (plus `DURATION_SLACK_S`) is dropped; one ending past it is clamped,
    so every deep link lands inside the video.
    """
    if not duration_s or duration_s <= 0:
        return list(cues)
    limit = duration_s + DURATION_SLACK_S
    return [
        cue if cue.end <= limit else Cue(cue.start, max(cue.start, limit), cue.text)
        for cue in cues
        if cue.start <= limit
    ]
