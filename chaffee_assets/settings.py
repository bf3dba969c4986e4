"""Every setting of the project, read from the environment in one place, typed and checked.

`settings()` is the accessor: it parses the documented variables (README, *Configuration*) into a
frozen `Settings`, and parses again only when one of them changes, so every caller sees the same
values without each module reading `os.environ` on its own. A malformed value raises `SettingsError`
with one line naming the variable; every `chaffee` command prints it as `error: …`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The demo's library, shipped in the package; also the int8 graph's calibration passages.
SAMPLE_LIBRARY = Path(__file__).resolve().parent / "sample_library"
DEFAULT_CHANNEL_URL = "https://www.youtube.com/@anthonychaffeemd"
DEFAULT_CHANNEL_ID = "UCzoRyR_nlesKZuOlEjWRXQQ"
DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2"
# Must be no later than the channel's first upload: a later start silently hides the oldest videos,
# while an earlier one only adds empty days.
DEFAULT_START_DATE = date(2015, 1, 1)
DEFAULT_DAILY_BUDGET_USD = 5.00
DEFAULT_LOCAL_AFTER_DAYS = 7
# One upload of at most 25 MB: minutes, not the hour four 900 s attempts would allow
# (transcription/openai_whisper.py says why).
DEFAULT_OPENAI_TIMEOUT_S = 300.0
DEFAULT_OPENAI_MAX_RETRIES = 2
DEFAULT_DAILY_CRON = "30 6 * * *"
DEFAULT_TIMEZONE = "UTC"
DEFAULT_RETRY_PARTITIONS_PER_TICK = 14
DEFAULT_FEED_SENSOR_INTERVAL_S = 15 * 60
DEFAULT_FEED_FIRST_TICK_DAYS = 2
DEFAULT_FEED_TIMEOUT_S = 20.0
DEFAULT_YOUTUBE_REQUEST_INTERVAL_S = 2.0
DEFAULT_RATE_LIMIT_PER_MINUTE = 60
DEFAULT_DB_POOL_SIZE = 10
DEFAULT_ANSWER_MODEL = "gpt-4.1-mini"
DEFAULT_ANSWER_BUDGET_USD = 1.00
# gpt-4.1-mini's list prices per million tokens; set both to 0 for a local OpenAI-compatible server.
DEFAULT_ANSWER_INPUT_USD_PER_MTOK = 0.40
DEFAULT_ANSWER_OUTPUT_USD_PER_MTOK = 1.60
DEFAULT_ANSWER_PASSAGES = 6
# One wait for the model's reply, never retried: a hung model holds an answer worker this long at most.
DEFAULT_ANSWER_TIMEOUT_S = 20.0
# Answers run on their own few threads with a short queue, so searches never wait behind them.
DEFAULT_ANSWER_WORKERS = 4
DEFAULT_ANSWER_QUEUE = 8
# After the model fails, answers are refused at once this long (a refused key: ten times as long).
DEFAULT_ANSWER_PAUSE_S = 30.0
DEFAULT_DAGSTER_UI_URL = "http://127.0.0.1:3000"
DEFAULT_ALERT_SMTP_PORT = 587
DEFAULT_ALERT_INTERVAL_S = 5 * 60
DEFAULT_ALERT_WAITING_DAYS = 3
DEFAULT_ALERT_FEED_FAILED_TICKS = 3
# Yesterday's (UTC) videos are expected in the warehouse by this time of day (UTC): the daily
# schedule runs at 06:30 and a day takes minutes, so 09:00 leaves room for a retry.
DEFAULT_ALERT_FRESH_BY = "09:00"
DEFAULT_QUESTION_LOG_DAYS = 90
# The file a library folder may hold with questions whose answers it contains (see golden_queries.py).
GOLDEN_QUERIES_FILE_NAME = "golden_queries.jsonl"


class SettingsError(ValueError):
    """A setting (an environment variable) whose value cannot be used.

    The message names the variable, the value it holds and what it accepts, in one line; every
    `chaffee` command prints it as `error: …` instead of a traceback.
    """


@dataclass(frozen=True)
class Settings:
    """The project's configuration. Field metadata names the environment variable each comes from."""

    home: Path = field(metadata={"env": "CHAFFEE_HOME"})
    database_url: str | None = field(default=None, repr=False, metadata={"env": "DATABASE_URL"})
    dagster_pg_url: str | None = field(default=None, repr=False, metadata={"env": "DAGSTER_PG_URL"})
    library_dir: Path | None = field(default=None, metadata={"env": "CHAFFEE_LIBRARY_DIR"})
    channel_url: str = field(default=DEFAULT_CHANNEL_URL, metadata={"env": "CHAFFEE_CHANNEL_URL"})
    channel_id: str | None = field(default=DEFAULT_CHANNEL_ID, metadata={"env": "CHAFFEE_CHANNEL_ID"})
    youtube_api_key: str | None = field(default=None, repr=False, metadata={"env": "YOUTUBE_API_KEY"})
    youtube_proxy: str | None = field(default=None, repr=False, metadata={"env": "CHAFFEE_YOUTUBE_PROXY"})
    youtube_cookies: Path | None = field(default=None, metadata={"env": "CHAFFEE_YOUTUBE_COOKIES"})
    youtube_request_interval_s: float = field(
        default=DEFAULT_YOUTUBE_REQUEST_INTERVAL_S, metadata={"env": "CHAFFEE_YOUTUBE_REQUEST_INTERVAL_S"}
    )
    start_date: date = field(default=DEFAULT_START_DATE, metadata={"env": "CHAFFEE_START_DATE"})
    openai_api_key: str | None = field(default=None, repr=False, metadata={"env": "OPENAI_API_KEY"})
    openai_base_url: str | None = field(default=None, metadata={"env": "OPENAI_BASE_URL"})
    daily_budget_usd: float = field(
        default=DEFAULT_DAILY_BUDGET_USD, metadata={"env": "CHAFFEE_DAILY_BUDGET_USD"}
    )
    openai_timeout_s: float = field(
        default=DEFAULT_OPENAI_TIMEOUT_S, metadata={"env": "CHAFFEE_OPENAI_TIMEOUT_S"}
    )
    openai_max_retries: int = field(
        default=DEFAULT_OPENAI_MAX_RETRIES, metadata={"env": "CHAFFEE_OPENAI_MAX_RETRIES"}
    )
    local_after_days: int = field(
        default=DEFAULT_LOCAL_AFTER_DAYS, metadata={"env": "CHAFFEE_LOCAL_AFTER_DAYS"}
    )
    whisper_model: str | None = field(default=None, metadata={"env": "CHAFFEE_WHISPER_MODEL"})
    whisper_device: str = field(default="auto", metadata={"env": "CHAFFEE_WHISPER_DEVICE"})
    whisper_compute_type: str | None = field(default=None, metadata={"env": "CHAFFEE_WHISPER_COMPUTE_TYPE"})
    whisper_batch_size: int | None = field(default=None, metadata={"env": "CHAFFEE_WHISPER_BATCH_SIZE"})
    embedding_model: str = field(default=DEFAULT_EMBEDDING_MODEL, metadata={"env": "CHAFFEE_EMBEDDING_MODEL"})
    embedding_device: str | None = field(default=None, metadata={"env": "CHAFFEE_EMBEDDING_DEVICE"})
    embedding_backend: str | None = field(default=None, metadata={"env": "CHAFFEE_EMBEDDING_BACKEND"})
    reranker: str | None = field(default=None, metadata={"env": "CHAFFEE_RERANKER"})
    daily_schedule_cron: str = field(
        default=DEFAULT_DAILY_CRON, metadata={"env": "CHAFFEE_DAILY_SCHEDULE_CRON"}
    )
    schedule_timezone: str = field(default=DEFAULT_TIMEZONE, metadata={"env": "CHAFFEE_SCHEDULE_TIMEZONE"})
    retry_partitions_per_tick: int = field(
        default=DEFAULT_RETRY_PARTITIONS_PER_TICK, metadata={"env": "CHAFFEE_RETRY_PARTITIONS_PER_TICK"}
    )
    feed_sensor_interval_s: int = field(
        default=DEFAULT_FEED_SENSOR_INTERVAL_S, metadata={"env": "CHAFFEE_FEED_SENSOR_INTERVAL_S"}
    )
    feed_first_tick_days: int = field(
        default=DEFAULT_FEED_FIRST_TICK_DAYS, metadata={"env": "CHAFFEE_FEED_FIRST_TICK_DAYS"}
    )
    feed_timeout_s: float = field(default=DEFAULT_FEED_TIMEOUT_S, metadata={"env": "CHAFFEE_FEED_TIMEOUT_S"})
    golden_queries: Path | None = field(default=None, metadata={"env": "CHAFFEE_GOLDEN_QUERIES"})
    # Read directly by cli/main.py as well: it decides how a malformed setting itself is shown.
    debug: bool = field(default=False, metadata={"env": "CHAFFEE_DEBUG"})
    # chaffee serve: protection, the connection pool, query embedding, answers (docs/web.md).
    rate_limit_per_minute: int = field(
        default=DEFAULT_RATE_LIMIT_PER_MINUTE, metadata={"env": "CHAFFEE_RATE_LIMIT_PER_MINUTE"}
    )
    db_pool_size: int = field(default=DEFAULT_DB_POOL_SIZE, metadata={"env": "CHAFFEE_DB_POOL_SIZE"})
    # The embedded PostgreSQL's buffer memory; None: sized from the machine (warehouse/server.py).
    db_shared_buffers: str | None = field(default=None, metadata={"env": "CHAFFEE_DB_SHARED_BUFFERS"})
    serve_embedding_threads: int = field(default=1, metadata={"env": "CHAFFEE_SERVE_EMBEDDING_THREADS"})
    # `/metrics` with this bearer token from anywhere; unset, only from loopback and private networks.
    metrics_token: str | None = field(default=None, repr=False, metadata={"env": "CHAFFEE_METRICS_TOKEN"})
    answer_model: str = field(default=DEFAULT_ANSWER_MODEL, metadata={"env": "CHAFFEE_ANSWER_MODEL"})
    answer_budget_usd: float = field(
        default=DEFAULT_ANSWER_BUDGET_USD, metadata={"env": "CHAFFEE_ANSWER_BUDGET_USD"}
    )
    answer_input_usd_per_mtok: float = field(
        default=DEFAULT_ANSWER_INPUT_USD_PER_MTOK, metadata={"env": "CHAFFEE_ANSWER_INPUT_USD_PER_MTOK"}
    )
    answer_output_usd_per_mtok: float = field(
        default=DEFAULT_ANSWER_OUTPUT_USD_PER_MTOK, metadata={"env": "CHAFFEE_ANSWER_OUTPUT_USD_PER_MTOK"}
    )
    answer_passages: int = field(default=DEFAULT_ANSWER_PASSAGES, metadata={"env": "CHAFFEE_ANSWER_PASSAGES"})
    answer_timeout_s: float = field(
        default=DEFAULT_ANSWER_TIMEOUT_S, metadata={"env": "CHAFFEE_ANSWER_TIMEOUT_S"}
    )
    answer_workers: int = field(default=DEFAULT_ANSWER_WORKERS, metadata={"env": "CHAFFEE_ANSWER_WORKERS"})
    answer_queue: int = field(default=DEFAULT_ANSWER_QUEUE, metadata={"env": "CHAFFEE_ANSWER_QUEUE"})
    answer_pause_s: float = field(default=DEFAULT_ANSWER_PAUSE_S, metadata={"env": "CHAFFEE_ANSWER_PAUSE_S"})
    # Keeping watch: alerts (docs/operations.md, "Alerts") and the audience's questions.
    dagster_ui_url: str = field(default=DEFAULT_DAGSTER_UI_URL, metadata={"env": "CHAFFEE_DAGSTER_UI_URL"})
    # A Slack incoming webhook's URL is itself the credential: never shown, only its host.
    alert_webhook_url: str | None = field(
        default=None, repr=False, metadata={"env": "CHAFFEE_ALERT_WEBHOOK_URL"}
    )
    alert_smtp_host: str | None = field(default=None, metadata={"env": "CHAFFEE_ALERT_SMTP_HOST"})
    alert_smtp_port: int = field(default=DEFAULT_ALERT_SMTP_PORT, metadata={"env": "CHAFFEE_ALERT_SMTP_PORT"})
    alert_smtp_user: str | None = field(default=None, metadata={"env": "CHAFFEE_ALERT_SMTP_USER"})
    alert_smtp_password: str | None = field(
        default=None, repr=False, metadata={"env": "CHAFFEE_ALERT_SMTP_PASSWORD"}
    )
    # STARTTLS before logging in (port 587); off for a relay on the same machine or network.
    alert_smtp_starttls: bool = field(default=True, metadata={"env": "CHAFFEE_ALERT_SMTP_STARTTLS"})
    alert_email_to: tuple[str, ...] = field(default=(), metadata={"env": "CHAFFEE_ALERT_EMAIL_TO"})
    alert_email_from: str | None = field(default=None, metadata={"env": "CHAFFEE_ALERT_EMAIL_FROM"})
    alert_interval_s: int = field(
        default=DEFAULT_ALERT_INTERVAL_S, metadata={"env": "CHAFFEE_ALERT_INTERVAL_S"}
    )
    alert_waiting_days: int = field(
        default=DEFAULT_ALERT_WAITING_DAYS, metadata={"env": "CHAFFEE_ALERT_WAITING_DAYS"}
    )
    alert_feed_failed_ticks: int = field(
        default=DEFAULT_ALERT_FEED_FAILED_TICKS, metadata={"env": "CHAFFEE_ALERT_FEED_FAILED_TICKS"}
    )
    alert_fresh_by: str = field(default=DEFAULT_ALERT_FRESH_BY, metadata={"env": "CHAFFEE_ALERT_FRESH_BY"})
    question_log: bool = field(default=True, metadata={"env": "CHAFFEE_QUESTION_LOG"})
    question_log_days: int = field(
        default=DEFAULT_QUESTION_LOG_DAYS, metadata={"env": "CHAFFEE_QUESTION_LOG_DAYS"}
    )

    @property
    def alert_email_configured(self) -> bool:
        return bool(self.alert_smtp_host and self.alert_email_to)

    # Voice model for who-said-it: `resemblyzer` (built in, the fastest), `campplus` (built in, the
    # most accurate) or a hub model (docs/speakers.md).
    speaker_model: str = field(default="resemblyzer", metadata={"env": "CHAFFEE_SPEAKER_MODEL"})
    speaker_device: str = field(default="cpu", metadata={"env": "CHAFFEE_SPEAKER_DEVICE"})
    # Where downloaded audio is kept for the next step (speech recognition's, then who-said-it's);
    # unset: every download is deleted when its step ends.
    audio_dir: Path | None = field(default=None, metadata={"env": "CHAFFEE_AUDIO_DIR"})

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Parse the variables in `environ` (default: the process environment); unset or empty → default."""
        env = _Reader(os.environ if environ is None else environ)
        return cls(
            home=env.get("CHAFFEE_HOME", _path) or _default_home(),
            database_url=env.get("DATABASE_URL", str),
            dagster_pg_url=env.get("DAGSTER_PG_URL", str),
            library_dir=env.get("CHAFFEE_LIBRARY_DIR", _path),
            channel_url=env.get("CHAFFEE_CHANNEL_URL", str) or DEFAULT_CHANNEL_URL,
            channel_id=env.get("CHAFFEE_CHANNEL_ID", str, default=DEFAULT_CHANNEL_ID),
            youtube_api_key=env.get("YOUTUBE_API_KEY", str),
            youtube_proxy=env.get("CHAFFEE_YOUTUBE_PROXY", str),
            youtube_cookies=env.get("CHAFFEE_YOUTUBE_COOKIES", _path),
            youtube_request_interval_s=env.get(
                "CHAFFEE_YOUTUBE_REQUEST_INTERVAL_S", _amount, DEFAULT_YOUTUBE_REQUEST_INTERVAL_S
            ),
            start_date=env.get("CHAFFEE_START_DATE", _iso_date, DEFAULT_START_DATE),
            openai_api_key=env.get("OPENAI_API_KEY", str),
            openai_base_url=env.get("OPENAI_BASE_URL", str),
            daily_budget_usd=env.get("CHAFFEE_DAILY_BUDGET_USD", _amount, DEFAULT_DAILY_BUDGET_USD),
            openai_timeout_s=env.get("CHAFFEE_OPENAI_TIMEOUT_S", _positive_float, DEFAULT_OPENAI_TIMEOUT_S),
            openai_max_retries=env.get("CHAFFEE_OPENAI_MAX_RETRIES", _count, DEFAULT_OPENAI_MAX_RETRIES),
            local_after_days=env.get("CHAFFEE_LOCAL_AFTER_DAYS", _count, DEFAULT_LOCAL_AFTER_DAYS),
            whisper_model=env.get("CHAFFEE_WHISPER_MODEL", str),
            whisper_device=env.get("CHAFFEE_WHISPER_DEVICE", str, "auto"),
            whisper_compute_type=env.get("CHAFFEE_WHISPER_COMPUTE_TYPE", str),
            whisper_batch_size=env.get("CHAFFEE_WHISPER_BATCH_SIZE", _count) or None,  # 0: the device default
            embedding_model=env.get("CHAFFEE_EMBEDDING_MODEL", str) or DEFAULT_EMBEDDING_MODEL,
            embedding_device=env.get("CHAFFEE_EMBEDDING_DEVICE", str),
            embedding_backend=env.get("CHAFFEE_EMBEDDING_BACKEND", _embedding_backend),
            reranker=env.get("CHAFFEE_RERANKER", str),
            daily_schedule_cron=env.get("CHAFFEE_DAILY_SCHEDULE_CRON", _cron, DEFAULT_DAILY_CRON),
            schedule_timezone=env.get("CHAFFEE_SCHEDULE_TIMEZONE", _timezone, DEFAULT_TIMEZONE),
            retry_partitions_per_tick=env.get(
                "CHAFFEE_RETRY_PARTITIONS_PER_TICK", _count, DEFAULT_RETRY_PARTITIONS_PER_TICK
            ),
            feed_sensor_interval_s=env.get(
                "CHAFFEE_FEED_SENSOR_INTERVAL_S", _positive_int, DEFAULT_FEED_SENSOR_INTERVAL_S
            ),
            feed_first_tick_days=env.get(
                "CHAFFEE_FEED_FIRST_TICK_DAYS", _count, DEFAULT_FEED_FIRST_TICK_DAYS
            ),
            feed_timeout_s=env.get("CHAFFEE_FEED_TIMEOUT_S", _positive_float, DEFAULT_FEED_TIMEOUT_S),
            golden_queries=env.get("CHAFFEE_GOLDEN_QUERIES", _path),
            debug=bool(env.get("CHAFFEE_DEBUG", str)),
            rate_limit_per_minute=env.get(
                "CHAFFEE_RATE_LIMIT_PER_MINUTE", _positive_int, DEFAULT_RATE_LIMIT_PER_MINUTE
            ),
            db_pool_size=env.get("CHAFFEE_DB_POOL_SIZE", _positive_int, DEFAULT_DB_POOL_SIZE),
            db_shared_buffers=env.get("CHAFFEE_DB_SHARED_BUFFERS", _memory_size),
            serve_embedding_threads=env.get("CHAFFEE_SERVE_EMBEDDING_THREADS", _positive_int, 1),
            metrics_token=env.get("CHAFFEE_METRICS_TOKEN", str) or None,
            answer_model=env.get("CHAFFEE_ANSWER_MODEL", str) or DEFAULT_ANSWER_MODEL,
            answer_budget_usd=env.get("CHAFFEE_ANSWER_BUDGET_USD", _amount, DEFAULT_ANSWER_BUDGET_USD),
            answer_input_usd_per_mtok=env.get(
                "CHAFFEE_ANSWER_INPUT_USD_PER_MTOK", _amount, DEFAULT_ANSWER_INPUT_USD_PER_MTOK
            ),
            answer_output_usd_per_mtok=env.get(
                "CHAFFEE_ANSWER_OUTPUT_USD_PER_MTOK", _amount, DEFAULT_ANSWER_OUTPUT_USD_PER_MTOK
            ),
            answer_passages=env.get("CHAFFEE_ANSWER_PASSAGES", _passages, DEFAULT_ANSWER_PASSAGES),
            answer_timeout_s=env.get("CHAFFEE_ANSWER_TIMEOUT_S", _positive_float, DEFAULT_ANSWER_TIMEOUT_S),
            answer_workers=env.get("CHAFFEE_ANSWER_WORKERS", _positive_int, DEFAULT_ANSWER_WORKERS),
            answer_queue=env.get("CHAFFEE_ANSWER_QUEUE", _count, DEFAULT_ANSWER_QUEUE),
            answer_pause_s=env.get("CHAFFEE_ANSWER_PAUSE_S", _positive_float, DEFAULT_ANSWER_PAUSE_S),
            dagster_ui_url=(env.get("CHAFFEE_DAGSTER_UI_URL", _http_url) or DEFAULT_DAGSTER_UI_URL).rstrip(
                "/"
            ),
            alert_webhook_url=env.get("CHAFFEE_ALERT_WEBHOOK_URL", _http_url),
            alert_smtp_host=env.get("CHAFFEE_ALERT_SMTP_HOST", str),
            alert_smtp_port=env.get("CHAFFEE_ALERT_SMTP_PORT", _port, DEFAULT_ALERT_SMTP_PORT),
            alert_smtp_user=env.get("CHAFFEE_ALERT_SMTP_USER", str),
            alert_smtp_password=env.get("CHAFFEE_ALERT_SMTP_PASSWORD", str),
            alert_smtp_starttls=env.get("CHAFFEE_ALERT_SMTP_STARTTLS", _on_off, True),
            alert_email_to=env.get("CHAFFEE_ALERT_EMAIL_TO", _addresses, ()),
            alert_email_from=env.get("CHAFFEE_ALERT_EMAIL_FROM", _address),
            alert_interval_s=env.get("CHAFFEE_ALERT_INTERVAL_S", _positive_int, DEFAULT_ALERT_INTERVAL_S),
            alert_waiting_days=env.get(
                "CHAFFEE_ALERT_WAITING_DAYS", _positive_int, DEFAULT_ALERT_WAITING_DAYS
            ),
            alert_feed_failed_ticks=env.get(
                "CHAFFEE_ALERT_FEED_FAILED_TICKS", _positive_int, DEFAULT_ALERT_FEED_FAILED_TICKS
            ),
            alert_fresh_by=env.get("CHAFFEE_ALERT_FRESH_BY", _clock_time, DEFAULT_ALERT_FRESH_BY),
            question_log=env.get("CHAFFEE_QUESTION_LOG", _on_off, True),
            question_log_days=env.get("CHAFFEE_QUESTION_LOG_DAYS", _positive_int, DEFAULT_QUESTION_LOG_DAYS),
            speaker_model=env.get("CHAFFEE_SPEAKER_MODEL", str) or "resemblyzer",
            speaker_device=env.get("CHAFFEE_SPEAKER_DEVICE", str) or "cpu",
            audio_dir=env.get("CHAFFEE_AUDIO_DIR", _path),
        )


def settings() -> Settings:
    """The current settings (parsed once per distinct environment; raises `SettingsError`)."""
    return _parsed(tuple((name, os.environ.get(name)) for name in ENVIRONMENT_VARIABLES))


@lru_cache(maxsize=8)
def _parsed(values: tuple[tuple[str, str | None], ...]) -> Settings:
    return Settings.from_env({name: value for name, value in values if value is not None})


def chaffee_home() -> Path:
    """The project-local folder for the embedded database and Dagster's files (`CHAFFEE_HOME`).

    Unset: `.chaffee/` beside `pyproject.toml` in a source checkout, or in the working directory for an
    installed package.
    """
    return settings().home


def _default_home() -> Path:
    if (PROJECT_ROOT / "pyproject.toml").exists():
        return PROJECT_ROOT / ".chaffee"
    return Path.cwd() / ".chaffee"


T = TypeVar("T")


class _Rejected(ValueError):
    """The value cannot be used; the message says what the setting accepts."""


class _Reader:
    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def get(self, name: str, parse: Callable[[str], T], default: T | None = None) -> T | None:
        raw = self._environ.get(name, "").strip()
        if not raw:
            return default
        try:
            return parse(raw)
        except _Rejected as exc:
            shown = "'***'" if name in SECRET_VARIABLES else repr(raw)
            raise SettingsError(f"{name}={shown} {exc}") from None


def _path(raw: str) -> Path:
    return Path(raw).expanduser().resolve()


def _iso_date(raw: str) -> date:
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise _Rejected("is not a date (YYYY-MM-DD)") from None


def _number(
    kind: type[T], *, above: float | None = None, at_least: float | None = None
) -> Callable[[str], T]:
    noun = "a whole number" if kind is int else "a number"

    def parse(raw: str) -> T:
        try:
            value = kind(raw)
        except ValueError:
            raise _Rejected(f"is not {noun}") from None
        if above is not None and not value > above:
            raise _Rejected(f"must be {noun} above {above:g}")
        if at_least is not None and not value >= at_least:
            raise _Rejected(f"must be {noun} of at least {at_least:g}")
        return value

    return parse


_count = _number(int, at_least=0)
_positive_int = _number(int, above=0)
_amount = _number(float, at_least=0)
_positive_float = _number(float, above=0)


def _passages(raw: str) -> int:
    value = _positive_int(raw)
    if value > 20:
        raise _Rejected("must be a whole number from 1 to 20")
    return value


_MEMORY_SIZE = re.compile(r"^([1-9]\d*)\s*(kB|MB|GB|TB)$")


def _memory_size(raw: str) -> str:
    """A size as PostgreSQL writes it ("512MB", "2GB"); at least PostgreSQL's floor of 128 kB."""
    match = _MEMORY_SIZE.match(raw)
    if not match:
        raise _Rejected("is not a size such as 512MB or 2GB (units kB, MB, GB, TB)")
    number, unit = int(match.group(1)), match.group(2)
    if number * {"kB": 1, "MB": 2**10, "GB": 2**20, "TB": 2**30}[unit] < 128:
        raise _Rejected("must be at least 128kB")
    return f"{number}{unit}"


EMBEDDING_BACKENDS = ("auto", "openvino", "openvino-int8", "torch-bf16", "onnx", "torch", "onnx-int8")


def _embedding_backend(raw: str) -> str:
    if raw not in EMBEDDING_BACKENDS:
        raise _Rejected(f"is not one of {', '.join(EMBEDDING_BACKENDS)}")
    return raw


_CRON_FIELD = re.compile(r"^[\d*/,\-A-Za-z?LW#]+$")


def _cron(raw: str) -> str:
    parts = raw.split()
    if len(parts) != 5 or not all(_CRON_FIELD.match(part) for part in parts):
        raise _Rejected("is not a cron expression of five fields (minute hour day month weekday)")
    return " ".join(parts)


def _timezone(raw: str) -> str:
    try:
        ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError):
        raise _Rejected("is not an IANA time zone such as UTC or Europe/London") from None
    return raw


def _on_off(raw: str) -> bool:
    value = raw.lower()
    if value in ("on", "true", "yes", "1"):
        return True
    if value in ("off", "false", "no", "0"):
        return False
    raise _Rejected("is not on or off")


def _port(raw: str) -> int:
    value = _positive_int(raw)
    if value > 65535:
        raise _Rejected("must be a port number from 1 to 65535")
    return value


def _http_url(raw: str) -> str:
    # The value may hold a credential (a webhook's token): the message never repeats it.
    if not re.match(r"^https?://[^\s/]+", raw):
        raise _Rejected("is not an http:// or https:// URL")
    return raw


_ADDRESS = re.compile(r"^[^@\s,<>]+@[^@\s,<>]+$")


def _address(raw: str) -> str:
    if not _ADDRESS.match(raw):
        raise _Rejected("is not an e-mail address such as ops@example.org")
    return raw


def _addresses(raw: str) -> tuple[str, ...]:
    return tuple(_address(part.strip()) for part in raw.split(",") if part.strip())


def _clock_time(raw: str) -> str:
    match = re.match(r"^([01]?\d|2[0-3]):([0-5]\d)$", raw)
    if not match:
        raise _Rejected("is not a time of day HH:MM (UTC)")
    return f"{int(match.group(1)):02d}:{match.group(2)}"


ENVIRONMENT_VARIABLES: tuple[str, ...] = tuple(f.metadata["env"] for f in fields(Settings))
# Variables whose value is a credential: an error about them never repeats the value.
SECRET_VARIABLES: frozenset[str] = frozenset(f.metadata["env"] for f in fields(Settings) if not f.repr)
