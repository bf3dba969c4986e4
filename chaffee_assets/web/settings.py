"""The web server's settings, read once from the environment with documented defaults."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from chaffee_assets.settings import DEFAULT_EMBEDDING_MODEL, SettingsError

DEFAULT_ANSWER_MODEL = "gpt-4.1-mini"
# gpt-4.1-mini's list prices per million tokens; set both to 0 for a local OpenAI-compatible server.
DEFAULT_INPUT_USD_PER_MTOK = 0.40
DEFAULT_OUTPUT_USD_PER_MTOK = 1.60
MAX_K = 50
MAX_QUERY_CHARS = 300


@dataclass(frozen=True)
class WebSettings:
    """Everything `chaffee serve` can be told; `from_env` is the only place that reads variables."""

    embedding_model: str = DEFAULT_EMBEDDING_MODEL
    rate_limit_per_minute: int = 60
    pool_size: int = 10
    # Torch threads each query embedding may use; concurrency comes from the requests (docs/web.md).
    torch_threads: int = 1
    answer_model: str = DEFAULT_ANSWER_MODEL
    answer_budget_usd: float = 1.00
    openai_api_key: str | None = None
    openai_base_url: str | None = None
    input_usd_per_mtok: float = DEFAULT_INPUT_USD_PER_MTOK
    output_usd_per_mtok: float = DEFAULT_OUTPUT_USD_PER_MTOK
    answer_passages: int = 6
    answer_max_tokens: int = 400
    answer_timeout_s: float = 30.0
    answer_cache_hours: float = 24.0
    # The openai client's own retries (with backoff, honouring Retry-After) before a 503.
    answer_retries: int = 1

    @property
    def answers_configured(self) -> bool:
        return bool(self.openai_api_key)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WebSettings:
        """Settings from `env` (default: the process environment); a bad value is a one-line SettingsError."""
        env = os.environ if env is None else env
        return cls(
            embedding_model=env.get("CHAFFEE_EMBEDDING_MODEL") or DEFAULT_EMBEDDING_MODEL,
            rate_limit_per_minute=_whole(env, "CHAFFEE_RATE_LIMIT_PER_MINUTE", 60, minimum=1),
            pool_size=_whole(env, "CHAFFEE_DB_POOL_SIZE", 10, minimum=1),
            torch_threads=_whole(env, "CHAFFEE_SERVE_TORCH_THREADS", 1, minimum=1, maximum=256),
            answer_model=env.get("CHAFFEE_ANSWER_MODEL") or DEFAULT_ANSWER_MODEL,
            answer_budget_usd=_amount(env, "CHAFFEE_ANSWER_BUDGET_USD", 1.00),
            openai_api_key=env.get("OPENAI_API_KEY") or None,
            openai_base_url=env.get("OPENAI_BASE_URL") or None,
            input_usd_per_mtok=_amount(env, "CHAFFEE_ANSWER_INPUT_USD_PER_MTOK", DEFAULT_INPUT_USD_PER_MTOK),
            output_usd_per_mtok=_amount(
                env, "CHAFFEE_ANSWER_OUTPUT_USD_PER_MTOK", DEFAULT_OUTPUT_USD_PER_MTOK
            ),
            answer_passages=_whole(env, "CHAFFEE_ANSWER_PASSAGES", 6, minimum=1, maximum=20),
        )


def _whole(
    env: Mapping[str, str], name: str, default: int, *, minimum: int, maximum: int | None = None
) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        value = None
    if value is None or value < minimum or (maximum is not None and value > maximum):
        bounds = f"from {minimum} to {maximum}" if maximum is not None else f"of at least {minimum}"
        raise SettingsError(f"{name} must be a whole number {bounds}, not {raw!r}")
    return value


def _amount(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        value = None
    if value is None or not value >= 0 or value == float("inf"):
        raise SettingsError(f"{name} must be an amount in USD of 0 or more (e.g. 1.00), not {raw!r}")
    return value
