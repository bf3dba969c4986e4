"""Why a video has no transcript yet: the failure classes the pipeline records and acts on."""

from __future__ import annotations

import enum
from datetime import datetime


class FailureClass(enum.StrEnum):
    """Each class decides what happens next to the video (see DESIGN.md)."""

    BLOCKED = "blocked"  # rate-limited / IP-blocked: retry later, never pay for ASR because of it
    NO_CAPTIONS = "no_captions"  # no captions exist: eligible for speech recognition
    TOO_NEW = "too_new"  # auto captions may still appear: wait before paying
    UNAVAILABLE = "unavailable"  # private, deleted, members-only, live, upcoming
    OVER_BUDGET = "over_budget"  # the daily ASR budget would be crossed: try on a later day
    ENGINE_UNAVAILABLE = "engine_unavailable"  # the chosen ASR engine cannot run (no key, no model)
    ERROR = "error"  # anything else: a broken file, a bug, a server error


class TranscriptFailure(Exception):
    """A classified reason why no transcript could be written for one video."""

    def __init__(
        self,
        failure_class: FailureClass,
        message: str,
        *,
        retry_after: datetime | None = None,
    ) -> None:
        super().__init__(message)
        self.failure_class = failure_class
        self.message = message
        self.retry_after = retry_after

    def __str__(self) -> str:
        return f"{self.failure_class.value}: {self.message}"
