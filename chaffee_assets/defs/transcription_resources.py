"""Dagster resources for speech recognition: local Whisper, OpenAI, and the policy choosing between them.

Dagster cannot bind a different resource per partition, so an asset receives all three and asks the
policy which engine to use for its partition. Neither engine does anything at resource setup: the
Whisper model (and the GPU) is touched on the first local transcription, the OpenAI client on the first
paid one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import date
from typing import Any, Protocol

import dagster as dg
import psycopg
from pydantic import Field, PrivateAttr

from chaffee_assets.defs.pools import GPU_POOL  # noqa: F401 - the pool the local Whisper steps declare
from chaffee_assets.ingest.outcomes import FailureClass, TranscriptFailure
from chaffee_assets.settings import settings
from chaffee_assets.transcription import registry
from chaffee_assets.transcription.budget import DEFAULT_PRICE_PER_MINUTE_USD
from chaffee_assets.transcription.engine import Transcriber
from chaffee_assets.transcription.local_whisper import LocalWhisperSettings, LocalWhisperTranscriber
from chaffee_assets.transcription.openai_whisper import (
    DEFAULT_MAX_UPLOAD_BYTES,
    OpenAISettings,
    OpenAITranscriber,
)
from chaffee_assets.transcription.policy import choose_engine, normalise_engine

ASR_ENGINE_TAG = "chaffee/asr_engine"  # run tag forcing the engine: a registry name or alias


class TranscriberResource(Protocol):
    """What the registry expects of an engine's resource."""

    def transcriber(self) -> Transcriber: ...


class LocalWhisperResource(dg.ConfigurableResource):
    """faster-whisper on this machine. Empty fields take the device's defaults: CUDA → large-v3,
    float16, batch 16 (fits a 16 GB card with room to spare); CPU → small, int8, batch 8."""

    model: str | None = Field(
        default=None, description="Model name (large-v3, small, …) or a CTranslate2 folder."
    )
    device: str = Field(default="auto", description="auto (CUDA when present, else CPU), cuda or cpu.")
    compute_type: str | None = Field(
        default=None, description="float16, int8_float16, int8, … (default per device)."
    )
    batch_size: int | None = Field(default=None, description="Chunks decoded together (default per device).")
    language: str | None = Field(default="en", description="Spoken language; empty detects it per file.")
    download_root: str | None = Field(default=None, description="Where downloaded models are cached.")
    local_files_only: bool = Field(
        default=False, description="Never download: fail if the model is not cached."
    )

    _transcriber: LocalWhisperTranscriber | None = PrivateAttr(default=None)

    @classmethod
    def from_env(cls) -> LocalWhisperResource:
        """`CHAFFEE_WHISPER_MODEL`, `_DEVICE`, `_COMPUTE_TYPE`, `_BATCH_SIZE`; unset: per-device defaults."""
        config = settings()
        return cls(
            model=config.whisper_model,
            device=config.whisper_device,
            compute_type=config.whisper_compute_type,
            batch_size=config.whisper_batch_size,
        )

    def settings(self) -> LocalWhisperSettings:
        return LocalWhisperSettings(
            model=self.model or None,
            device=self.device,
            compute_type=self.compute_type or None,
            batch_size=self.batch_size,
            language=self.language or None,
            download_root=self.download_root or None,
            local_files_only=self.local_files_only,
        )

    def transcriber(self) -> LocalWhisperTranscriber:
        """The run's transcriber; its model is loaded on the first file and kept until teardown."""
        if self._transcriber is None:
            self._transcriber = LocalWhisperTranscriber(self.settings())
        return self._transcriber

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._transcriber is not None:
            self._transcriber.close()
            self._transcriber = None


class OpenAIWhisperResource(dg.ConfigurableResource):
    """OpenAI's transcription endpoint under a daily budget. No key or URL: the `openai` client reads
    `OPENAI_API_KEY` and `OPENAI_BASE_URL` itself. Unset budget, timeout and retries come from
    `CHAFFEE_DAILY_BUDGET_USD` ($5.00), `CHAFFEE_OPENAI_TIMEOUT_S` (300) and
    `CHAFFEE_OPENAI_MAX_RETRIES` (2)."""

    api_key: str | None = None
    base_url: str | None = None
    model: str = "whisper-1"
    language: str | None = "en"
    price_per_minute_usd: float = DEFAULT_PRICE_PER_MINUTE_USD
    daily_budget_usd: float | None = Field(default=None, description="USD per UTC day; default from env.")
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    timeout_s: float | None = Field(
        default=None, description="Seconds one upload may take before it is abandoned; default from env."
    )
    max_retries: int | None = Field(
        default=None, description="Retries of a failed upload (429, 5xx, timeout); default from env."
    )

    @classmethod
    def from_env(cls) -> OpenAIWhisperResource:
        # EnvVar keeps the key out of the UI and run config; the client reads it itself when unset.
        api_key = dg.EnvVar("OPENAI_API_KEY") if settings().openai_api_key else None
        return cls(api_key=api_key)

    def settings(self) -> OpenAISettings:
        config = settings()
        budget = config.daily_budget_usd if self.daily_budget_usd is None else self.daily_budget_usd
        timeout_s = config.openai_timeout_s if self.timeout_s is None else self.timeout_s
        max_retries = config.openai_max_retries if self.max_retries is None else self.max_retries
        return OpenAISettings(
            api_key=self.api_key or None,
            base_url=self.base_url or None,
            model=self.model,
            language=self.language or None,
            price_per_minute_usd=self.price_per_minute_usd,
            daily_budget_usd=budget,
            max_upload_bytes=self.max_upload_bytes,
            timeout_s=timeout_s,
            max_retries=max_retries,
        )

    def transcriber(self, connect: Callable[[], psycopg.Connection] | None = None) -> OpenAITranscriber:
        """A transcriber writing spend to the warehouse (or to connections from `connect`)."""
        if connect is None:
            return OpenAITranscriber(self.settings())
        return OpenAITranscriber(self.settings(), connect=connect)


class TranscriptionPolicyResource(dg.ConfigurableResource):
    """Which engine a partition uses: local Whisper once older than `local_after_days`, else OpenAI."""

    local_after_days: int | None = Field(
        default=None, description="Default: CHAFFEE_LOCAL_AFTER_DAYS, else 7."
    )
    override: str | None = Field(
        default=None, description="Force an engine (local_whisper, openai) for every partition."
    )

    def days(self) -> int:
        if self.local_after_days is not None:
            return self.local_after_days
        return settings().local_after_days

    def engine_for(
        self,
        partition_date: date,
        today: date,
        *,
        run_tags: Mapping[str, str] | None = None,
        config_override: str | None = None,
    ) -> str:
        """The engine for a partition. The most specific choice wins: run config, then the run tag
        `chaffee/asr_engine`, then this resource's override, then the partition's age."""
        tag = (run_tags or {}).get(ASR_ENGINE_TAG)
        forced = config_override or tag or self.override
        return choose_engine(
            partition_date,
            today,
            local_after_days=self.days(),
            override=normalise_engine(forced) if forced else None,
        )


def transcription_resources_from_env() -> dict[str, dg.ConfigurableResource]:
    """Every engine's resource of the registry and the policy, as the code location binds them."""
    return {
        **{engine.resource_key: engine.resource_class().from_env() for engine in registry.engines()},
        "transcription_policy": TranscriptionPolicyResource(),
    }


@contextmanager
def engine_resource_outside_dagster(engine: str) -> Iterator[Any]:
    """An engine's resource built from the environment and initialised for use outside a run (the
    CLI): `EnvVar` settings are resolved as Dagster resolves them at run start, and the resource is
    torn down at the end of the block."""
    entry = registry.source(registry.normalise_engine(engine))
    with entry.resource_class().from_env().process_config_and_initialize_cm() as resource:
        yield resource


def transcriber_for(engine: str, resources: Mapping[str, TranscriberResource]) -> Transcriber:
    """The transcriber of `engine` from the run's bound resources (keyed as the registry says)."""
    entry = registry.source(engine)
    if entry.resource_key is None or entry.resource_key not in resources:
        raise TranscriptFailure(
            FailureClass.ENGINE_UNAVAILABLE, f"no resource '{entry.resource_key}' is bound for {engine}"
        )
    return resources[entry.resource_key].transcriber()
