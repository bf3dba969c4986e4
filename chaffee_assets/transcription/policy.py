"""Which engine transcribes a partition: local Whisper for the back catalogue, OpenAI for new days."""

from __future__ import annotations

from datetime import date

from chaffee_assets.settings import DEFAULT_LOCAL_AFTER_DAYS  # noqa: F401 - re-exported
from chaffee_assets.transcription.registry import BACK_CATALOGUE_ENGINE, NEW_DAYS_ENGINE, normalise_engine

__all__ = ["DEFAULT_LOCAL_AFTER_DAYS", "choose_engine", "normalise_engine"]


def choose_engine(
    partition_date: date,
    today: date,
    *,
    local_after_days: int = DEFAULT_LOCAL_AFTER_DAYS,
    override: str | None = None,
) -> str:
    """The engine for a partition: `override` if given, else the back-catalogue engine (local Whisper)
    once the partition is more than `local_after_days` days old, else the new-days engine (OpenAI).

    New days go to OpenAI because they are few and wanted soon; the back catalogue is hundreds of hours,
    free on a local GPU and in no hurry.
    """
    if override:
        return normalise_engine(override)
    if local_after_days < 0:
        raise ValueError(f"local_after_days must be 0 or more, got {local_after_days}")
    age_days = (today - partition_date).days
    return BACK_CATALOGUE_ENGINE if age_days > local_after_days else NEW_DAYS_ENGINE
