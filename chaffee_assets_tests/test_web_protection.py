"""The rate limiter's arithmetic and the server's settings, without a server."""

from __future__ import annotations

import pytest

from chaffee_assets.settings import DEFAULT_EMBEDDING_MODEL, SettingsError
from chaffee_assets.web.protection import ANSWER_COST, RateLimited, RateLimiter
from chaffee_assets.web.settings import WebSettings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_full_minute_may_come_in_a_burst_then_the_bucket_refills_evenly() -> None:
    clock = Clock()
    limiter = RateLimiter(60, clock=clock)
    for _ in range(60):
        limiter.take("a")
    with pytest.raises(RateLimited) as refused:
        limiter.take("a")
    assert refused.value.retry_after_s == 1
    clock.now += 1.0  # one request's worth refilled
    limiter.take("a")
    with pytest.raises(RateLimited):
        limiter.take("a")


def test_clients_have_separate_buckets() -> None:
    limiter = RateLimiter(2, clock=Clock())
    limiter.take("a")
    limiter.take("a")
    limiter.take("b")
    with pytest.raises(RateLimited):
        limiter.take("a")


def test_an_answer_costs_more_and_says_how_long_to_wait() -> None:
    clock = Clock()
    limiter = RateLimiter(6, clock=clock)  # one token every 10 s
    limiter.take("a", ANSWER_COST)
    with pytest.raises(RateLimited) as refused:
        limiter.take("a", ANSWER_COST)
    assert refused.value.retry_after_s == 40  # 1 token left, 4 more needed
    assert "6 per minute" in str(refused.value)


def test_a_request_dearer_than_the_whole_limit_takes_a_full_bucket() -> None:
    clock = Clock()
    limiter = RateLimiter(3, clock=clock)
    limiter.take("a", ANSWER_COST)
    with pytest.raises(RateLimited):
        limiter.take("a")
    clock.now += 60
    limiter.take("a", ANSWER_COST)


WEB_VARIABLES = (
    "CHAFFEE_EMBEDDING_MODEL",
    "CHAFFEE_ANSWER_MODEL",
    "CHAFFEE_ANSWER_BUDGET_USD",
    "CHAFFEE_RATE_LIMIT_PER_MINUTE",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "CHAFFEE_ANSWER_INPUT_USD_PER_MTOK",
    "CHAFFEE_ANSWER_OUTPUT_USD_PER_MTOK",
    "CHAFFEE_ANSWER_PASSAGES",
    "CHAFFEE_DB_POOL_SIZE",
)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in WEB_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_settings_defaults_come_from_the_documented_places(clean_env) -> None:
    settings = WebSettings.from_env()
    assert settings.embedding_model == DEFAULT_EMBEDDING_MODEL
    assert settings.answer_model == "gpt-4.1-mini" and settings.answer_budget_usd == 1.00
    assert settings.rate_limit_per_minute == 60 and not settings.answers_configured


def test_settings_read_the_environment(clean_env) -> None:
    for name, value in {
        "CHAFFEE_EMBEDDING_MODEL": "/models/bge-small",
        "CHAFFEE_ANSWER_MODEL": "llama3.1",
        "CHAFFEE_ANSWER_BUDGET_USD": "0",
        "CHAFFEE_RATE_LIMIT_PER_MINUTE": "120",
        "OPENAI_API_KEY": "sk-x",
        "OPENAI_BASE_URL": "http://127.0.0.1:11434/v1",
        "CHAFFEE_ANSWER_INPUT_USD_PER_MTOK": "0",
        "CHAFFEE_ANSWER_OUTPUT_USD_PER_MTOK": "0",
    }.items():
        clean_env.setenv(name, value)
    settings = WebSettings.from_env()
    assert settings.embedding_model == "/models/bge-small" and settings.answer_model == "llama3.1"
    assert settings.answer_budget_usd == 0 and settings.rate_limit_per_minute == 120
    assert settings.answers_configured and settings.openai_base_url == "http://127.0.0.1:11434/v1"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CHAFFEE_RATE_LIMIT_PER_MINUTE", "0"),
        ("CHAFFEE_RATE_LIMIT_PER_MINUTE", "sixty"),
        ("CHAFFEE_ANSWER_BUDGET_USD", "-1"),
        ("CHAFFEE_ANSWER_BUDGET_USD", "nan"),
        ("CHAFFEE_ANSWER_PASSAGES", "21"),
        ("CHAFFEE_DB_POOL_SIZE", "0"),
    ],
)
def test_a_bad_setting_is_a_one_line_error_naming_it(clean_env, name: str, value: str) -> None:
    clean_env.setenv(name, value)
    with pytest.raises(SettingsError) as error:
        WebSettings.from_env()
    assert str(error.value).startswith(f"{name}={value!r} ") and "\n" not in str(error.value)
