"""The engine policy: local Whisper for the back catalogue, OpenAI for new days, overrides obeyed."""

from datetime import date, timedelta

import pytest

from chaffee_assets.transcription.policy import choose_engine

TODAY = date(2025, 3, 10)


def test_old_partition_uses_local_whisper() -> None:
    assert choose_engine(date(2019, 6, 1), TODAY) == "local_whisper"


def test_yesterday_uses_openai() -> None:
    assert choose_engine(TODAY - timedelta(days=1), TODAY) == "openai"


@pytest.mark.parametrize(("age_days", "engine"), [(0, "openai"), (7, "openai"), (8, "local_whisper")])
def test_local_after_more_than_n_days(age_days: int, engine: str) -> None:
    assert choose_engine(TODAY - timedelta(days=age_days), TODAY, local_after_days=7) == engine


def test_local_after_days_is_configurable() -> None:
    assert choose_engine(TODAY - timedelta(days=2), TODAY, local_after_days=1) == "local_whisper"


@pytest.mark.parametrize(
    ("override", "engine"),
    [("openai", "openai"), ("local_whisper", "local_whisper"), ("local", "local_whisper")],
)
def test_override_wins_over_age(override: str, engine: str) -> None:
    old, new = date(2019, 6, 1), TODAY - timedelta(days=1)
    assert choose_engine(old, TODAY, override=override) == engine
    assert choose_engine(new, TODAY, override=override) == engine


def test_unknown_override_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown speech-recognition engine 'gpu'.*local_whisper.*openai"):
        choose_engine(TODAY, TODAY, override="gpu")
