"""The web server's settings, read once from the environment with documented defaults."""

from __future__ import annotations

from dataclasses import dataclass, field

# The limits every face shares live with their checks; named here too for the web's own modules.
from chaffee_assets.search_input import MAX_K, MAX_QUERY_CHARS  # noqa: F401
from chaffee_assets.settings import (
    DEFAULT_ANSWER_BUDGET_USD,
    DEFAULT_ANSWER_INPUT_USD_PER_MTOK,
    DEFAULT_ANSWER_MODEL,
    DEFAULT_ANSWER_OUTPUT_USD_PER_MTOK,
    DEFAULT_ANSWER_PASSAGES,
    DEFAULT_ANSWER_PAUSE_S,
    DEFAULT_ANSWER_QUEUE,
    DEFAULT_ANSWER_TIMEOUT_S,
    DEFAULT_ANSWER_WORKERS,
    DEFAULT_DB_POOL_SIZE,
    DEFAULT_EMBEDDING_MODEL,
    DEFAULT_RATE_LIMIT_PER_MINUTE,
    settings,
)


@dataclass(frozen=True)
class WebSettings:
    """Everything `chaffee serve` can be told; `from_env` takes it from the project's settings."""

    embedding_model: str = DEFAULT_EMBEDDING_MODEL
    rate_limit_per_minute: int = DEFAULT_RATE_LIMIT_PER_MINUTE
    pool_size: int = DEFAULT_DB_POOL_SIZE
    # Threads each query's embedding may use; concurrency comes from the requests (docs/web.md).
    embedding_threads: int = 1
    answer_model: str = DEFAULT_ANSWER_MODEL
    answer_budget_usd: float = DEFAULT_ANSWER_BUDGET_USD
    openai_api_key: str | None = field(default=None, repr=False)
    openai_base_url: str | None = None
    input_usd_per_mtok: float = DEFAULT_ANSWER_INPUT_USD_PER_MTOK
    output_usd_per_mtok: float = DEFAULT_ANSWER_OUTPUT_USD_PER_MTOK
    answer_passages: int = DEFAULT_ANSWER_PASSAGES
    answer_max_tokens: int = 400
    # One bounded wait for the reply; a timeout is never retried (the model may be working on it).
    answer_timeout_s: float = DEFAULT_ANSWER_TIMEOUT_S
    answer_cache_hours: float = 24.0
    # Retries of a call the model refused before doing any work (429 or 5xx), each reserved anew.
    answer_retries: int = 1
    answer_workers: int = DEFAULT_ANSWER_WORKERS
    answer_queue: int = DEFAULT_ANSWER_QUEUE
    answer_pause_s: float = DEFAULT_ANSWER_PAUSE_S
    # Every search and answer recorded in `question_log` (CHAFFEE_QUESTION_LOG=off: none).
    question_log: bool = True
    # `/metrics` with this bearer token from anywhere; None: only from loopback and private networks.
    metrics_token: str | None = field(default=None, repr=False)

    @property
    def answers_configured(self) -> bool:
        return bool(self.openai_api_key)

    @classmethod
    def from_env(cls) -> WebSettings:
        """The web server's part of `chaffee_assets.settings` (a bad value is a one-line SettingsError)."""
        config = settings()
        return cls(
            embedding_model=config.embedding_model,
            rate_limit_per_minute=config.rate_limit_per_minute,
            pool_size=config.db_pool_size,
            embedding_threads=config.serve_embedding_threads,
            answer_model=config.answer_model,
            answer_budget_usd=config.answer_budget_usd,
            openai_api_key=config.openai_api_key,
            openai_base_url=config.openai_base_url,
            input_usd_per_mtok=config.answer_input_usd_per_mtok,
            output_usd_per_mtok=config.answer_output_usd_per_mtok,
            answer_passages=config.answer_passages,
            answer_timeout_s=config.answer_timeout_s,
            answer_workers=config.answer_workers,
            answer_queue=config.answer_queue,
            answer_pause_s=config.answer_pause_s,
            question_log=config.question_log,
            metrics_token=config.metrics_token,
        )
