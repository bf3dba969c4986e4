"""Which engine transcribes a partition: local Whisper for the back catalogue, OpenAI for new days."""

from __future__ import annotations

from datetime import date

from chaffee_assets.transcription.engine import LOCAL_WHISPER, OPENAI

DEFAULT_LOCAL_AFTER_DAYS = 7
# Spellings an operator may type in a run tag, config or the CLI.
_ALIASES = {"local_whisper": LOCAL_WHISPER, "local": LOCAL_WHISPER, "openai": OPENAI}


def normalise_engine(name: str) -> str:
    """'local_whisper' or 'openai' for an accepted spelling; ValueError naming the choices otherwise."""
    engine = _ALIASES.get(name.strip().lower())
    if engine is None:
        raise ValueError(
            f"unknown speech-recognition engine {name!r}: use 'local_whisper' (or 'local') or 'openai'"
        )
    return engine


def choose_engine(
    partition_date: date,
    today: date,
    *,
    local_after_days: int = DEFAULT_LOCAL_AFTER_DAYS,
    override: str | None = None,
) -> str:
    """The engine for a partition: `override` if given, else local Whisper once the partition is
    more than `local_after_days` days old, else OpenAI.

    New days go to OpenAI because they are few and wanted soon; the back catalogue is hundreds of hours,
    free on a local GPU and in no hurry.
    """
    if override:
        return normalise_engine(override)
    if local_after_days < 0:
        raise ValueError(f"local_after_days must be 0 or more, got {local_after_days}")
    age_days = (today - partition_date).days
    return LOCAL_WHISPER if age_days > local_after_days else OPENAI
