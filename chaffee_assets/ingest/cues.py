"""The normalised unit every transcript is made of: a timed piece of text."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Cue:
    """A span of speech: seconds from the start of the video, and what was said."""

    start: float
    end: float
    text: str

    def as_dict(self) -> dict[str, float | str]:
        return {"start": round(self.start, 3), "end": round(self.end, 3), "text": self.text}
