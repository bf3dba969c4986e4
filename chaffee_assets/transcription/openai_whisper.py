"""Paid speech recognition through OpenAI's transcription endpoint, under a daily budget.

Audio is re-encoded to compact MP3 and, when still over the upload limit, split at silences; each
piece's segment timestamps are shifted back onto the original audio. The estimate is reserved against
the daily budget before the first upload, and every upload actually made is written to the ledger.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from chaffee_assets.ingest.cues import Cue
from chaffee_assets.ingest.outcomes import FailureClass, TranscriptFailure
from chaffee_assets.settings import DEFAULT_OPENAI_MAX_RETRIES, DEFAULT_OPENAI_TIMEOUT_S
from chaffee_assets.transcription import audio as audio_lib
from chaffee_assets.transcription import budget
from chaffee_assets.transcription.engine import OPENAI, Transcription, describe, tidy_cues

UPLOAD_LIMIT_BYTES = 25 * 1024 * 1024  # the endpoint's documented limit
DEFAULT_MAX_UPLOAD_BYTES = 24 * 1024 * 1024  # a margin for the multipart envelope
# A 24 MB upload (about 100 minutes of speech at the upload bitrate) plus the server's work takes a
# few minutes; a hung connection must not hold a run for an hour. Worst case for one piece:
# (1 + retries) x timeout, about 15 minutes. The retries are the client's own (exponential backoff,
# Retry-After honoured) for timeouts, 408/409/429 and 5xx; connect failures surface in 20 s.
DEFAULT_TIMEOUT_S = DEFAULT_OPENAI_TIMEOUT_S
DEFAULT_MAX_RETRIES = DEFAULT_OPENAI_MAX_RETRIES
# verbose_json names the language; the transcripts table keeps ISO codes like the caption sources.
_LANGUAGE_CODES = {"english": "en", "spanish": "es", "french": "fr", "german": "de", "portuguese": "pt"}


@dataclass(frozen=True)
class OpenAISettings:
    """How to call the transcription endpoint; `None` key/URL defer to the client's own environment
    handling (`OPENAI_API_KEY`, `OPENAI_BASE_URL`)."""

    api_key: str | None = None
    base_url: str | None = None
    model: str = "whisper-1"
    language: str | None = "en"
    price_per_minute_usd: float = budget.DEFAULT_PRICE_PER_MINUTE_USD
    daily_budget_usd: float = budget.DEFAULT_DAILY_BUDGET_USD
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    bitrate: int = audio_lib.UPLOAD_BITRATE
    timeout_s: float = DEFAULT_TIMEOUT_S
    connect_timeout_s: float = 20.0
    max_retries: int = DEFAULT_MAX_RETRIES

    def __post_init__(self) -> None:
        if self.max_upload_bytes <= 0 or self.max_upload_bytes > UPLOAD_LIMIT_BYTES:
            raise ValueError(f"max_upload_bytes must be between 1 and {UPLOAD_LIMIT_BYTES}")
        if self.daily_budget_usd < 0 or self.price_per_minute_usd < 0:
            raise ValueError("budget and price must not be negative")
        if self.timeout_s <= 0 or self.max_retries < 0:
            raise ValueError("the upload timeout must be positive and retries not negative")


def _default_connect() -> psycopg.Connection:
    from chaffee_assets.warehouse import connect

    return connect(autocommit=True)


class OpenAITranscriber:
    """`Transcriber` on OpenAI's `whisper-1` (or a compatible server at `base_url`)."""

    engine = OPENAI

    def __init__(
        self,
        settings: OpenAISettings | None = None,
        *,
        connect: Callable[[], psycopg.Connection] = _default_connect,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings or OpenAISettings()
        self._connect = connect
        self._clock = clock
        self._client_obj: Any = None
        self._client_lock = threading.Lock()

    def transcribe(self, audio: Path, *, video_id: str | None = None) -> Transcription:
        what = describe(audio, video_id)
        if not audio.is_file():
            raise TranscriptFailure(FailureClass.ERROR, f"audio file for {what} not found: {audio}")
        client = self._client(what)
        with audio_lib.scratch_dir(prefix="chaffee-openai-") as workdir:
            try:
                samples = audio_lib.decode(audio)
                chunks = audio_lib.split_for_upload(
                    audio,
                    workdir,
                    max_bytes=self.settings.max_upload_bytes,
                    bitrate=self.settings.bitrate,
                    samples=samples,
                )
            except (audio_lib.UndecodableAudio, ValueError) as exc:
                raise TranscriptFailure(
                    FailureClass.ERROR, f"cannot prepare {what} for upload: {exc}"
                ) from exc
            seconds = len(samples) / audio_lib.SAMPLE_RATE
            del samples
            price = self.settings.price_per_minute_usd
            cues: list[Cue] = []
            languages: list[str] = []
            with (
                self._connect() as conn,
                budget.budgeted(
                    conn,
                    budget_usd=self.settings.daily_budget_usd,
                    estimate_usd=sum(budget.estimate_cost(c.duration, price) for c in chunks),
                    audio_seconds=seconds,
                    video_id=video_id,
                    engine=OPENAI,
                    model=self.settings.model,
                    now=self._clock(),
                    what=what,
                ) as spend,
            ):
                for index, chunk in enumerate(chunks):
                    response = self._upload(client, chunk, what, index, len(chunks))
                    spend.add(chunk.duration, budget.estimate_cost(chunk.duration, price))
                    cues.extend(_offset_segments(response, chunk.offset))
                    if getattr(response, "language", None):
                        languages.append(str(response.language))
        return Transcription(
            cues=tidy_cues(cues, seconds),
            engine=OPENAI,
            model=self.settings.model,
            language=self.settings.language or _language_code(languages),
            audio_seconds=round(seconds, 3),
            cost_usd=round(spend.total_usd, 4),
        )

    def _client(self, what: str) -> Any:
        with self._client_lock:
            if self._client_obj is None:
                import openai

                try:
                    self._client_obj = openai.OpenAI(
                        api_key=self.settings.api_key or None,
                        base_url=self.settings.base_url or None,
                        timeout=openai.Timeout(
                            self.settings.timeout_s, connect=self.settings.connect_timeout_s
                        ),
                        max_retries=self.settings.max_retries,
                    )
                except openai.OpenAIError as exc:
                    raise TranscriptFailure(
                        FailureClass.ENGINE_UNAVAILABLE,
                        f"cannot transcribe {what} with OpenAI: {exc} "
                        "(set OPENAI_API_KEY, or choose local Whisper)",
                    ) from exc
            return self._client_obj

    def _upload(self, client: Any, chunk: audio_lib.AudioChunk, what: str, index: int, count: int) -> Any:
        import openai

        piece = f"{what}, piece {index + 1}/{count} at {chunk.offset:.1f}s"
        extra: dict[str, Any] = {"language": self.settings.language} if self.settings.language else {}
        try:
            with chunk.path.open("rb") as file:
                return client.audio.transcriptions.create(
                    model=self.settings.model,
                    file=(chunk.path.name, file, "audio/mpeg"),
                    response_format="verbose_json",
                    timestamp_granularities=["segment"],
                    **extra,
                )
        except openai.RateLimitError as exc:
            raise TranscriptFailure(
                FailureClass.BLOCKED,
                f"OpenAI rate-limited the upload of {piece} after {self.settings.max_retries} retries: "
                f"{_short(exc)}; it will be retried later (check the account's limits and credit)",
                retry_after=self._clock() + timedelta(hours=1),
            ) from exc
        except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
            raise TranscriptFailure(
                FailureClass.ENGINE_UNAVAILABLE,
                f"OpenAI refused the API key while uploading {piece}: {_short(exc)}; check OPENAI_API_KEY",
            ) from exc
        except openai.APIStatusError as exc:
            raise TranscriptFailure(
                FailureClass.ERROR,
                f"OpenAI answered HTTP {exc.status_code} to the upload of {piece}"
                f"{' after retries' if exc.status_code >= 500 else ''}: {_short(exc)}",
            ) from exc
        except openai.APITimeoutError as exc:
            raise TranscriptFailure(
                FailureClass.ERROR,
                f"OpenAI did not answer the upload of {piece} within {self.settings.timeout_s:g} s, "
                f"{self.settings.max_retries + 1} time(s); it will be retried later "
                "(raise CHAFFEE_OPENAI_TIMEOUT_S for slow links)",
            ) from exc
        except openai.APIConnectionError as exc:
            raise TranscriptFailure(
                FailureClass.ERROR,
                f"could not reach OpenAI ({client.base_url}) to upload {piece}: {_short(exc)}; "
                "check the network or OPENAI_BASE_URL",
            ) from exc


def _offset_segments(response: Any, offset: float) -> list[Cue]:
    segments = getattr(response, "segments", None) or []
    return [Cue(float(s.start) + offset, float(s.end) + offset, str(s.text)) for s in segments]


def _language_code(languages: list[str]) -> str | None:
    if not languages:
        return None
    name = max(set(languages), key=languages.count).lower()
    return _LANGUAGE_CODES.get(name, name)


def _short(exc: Exception, limit: int = 300) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
