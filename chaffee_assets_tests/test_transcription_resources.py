"""The Dagster wiring of speech recognition: settings from the environment, the policy's precedence,
and nothing loaded at resource setup."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import date

import pytest

from chaffee_assets.defs.transcription_resources import (
    ASR_ENGINE_TAG,
    GPU_POOL,
    LocalWhisperResource,
    OpenAIWhisperResource,
    TranscriptionPolicyResource,
)

TODAY = date(2025, 3, 10)
OLD = date(2020, 1, 1)
YESTERDAY = date(2025, 3, 9)


def test_budget_comes_from_the_environment_with_a_five_dollar_default(monkeypatch) -> None:
    monkeypatch.delenv("CHAFFEE_DAILY_BUDGET_USD", raising=False)
    assert OpenAIWhisperResource().settings().daily_budget_usd == 5.0
    monkeypatch.setenv("CHAFFEE_DAILY_BUDGET_USD", "12.5")
    assert OpenAIWhisperResource().settings().daily_budget_usd == 12.5
    assert OpenAIWhisperResource(daily_budget_usd=1.0).settings().daily_budget_usd == 1.0


def test_openai_defaults() -> None:
    settings = OpenAIWhisperResource().settings()
    assert (settings.model, settings.price_per_minute_usd) == ("whisper-1", 0.006)
    assert settings.max_upload_bytes < 25 * 1024 * 1024
    assert settings.api_key is None and settings.base_url is None  # the client reads its own env


def test_local_whisper_defaults_leave_the_device_to_decide() -> None:
    settings = LocalWhisperResource().settings()
    assert (settings.model, settings.device, settings.compute_type, settings.batch_size) == (
        None,
        "auto",
        None,
        None,
    )


def test_policy_reads_local_after_days_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("CHAFFEE_LOCAL_AFTER_DAYS", "0")
    assert TranscriptionPolicyResource().engine_for(YESTERDAY, TODAY) == "local_whisper"
    monkeypatch.delenv("CHAFFEE_LOCAL_AFTER_DAYS")
    assert TranscriptionPolicyResource().engine_for(YESTERDAY, TODAY) == "openai"
    assert TranscriptionPolicyResource().engine_for(OLD, TODAY) == "local_whisper"


def test_run_tag_and_run_config_force_the_engine() -> None:
    policy = TranscriptionPolicyResource()
    assert policy.engine_for(OLD, TODAY, run_tags={ASR_ENGINE_TAG: "openai"}) == "openai"
    assert policy.engine_for(YESTERDAY, TODAY, run_tags={ASR_ENGINE_TAG: "local_whisper"}) == "local_whisper"
    # Run config is the most specific choice.
    tags = {ASR_ENGINE_TAG: "openai"}
    assert (
        policy.engine_for(YESTERDAY, TODAY, run_tags=tags, config_override="local_whisper") == "local_whisper"
    )
    with pytest.raises(ValueError, match="unknown speech-recognition engine"):
        policy.engine_for(OLD, TODAY, run_tags={ASR_ENGINE_TAG: "whisper-large"})


def test_resource_setup_loads_no_engine() -> None:
    # In a fresh process: a run whose asset holds both engines but only asks the policy must not
    # import faster-whisper, CTranslate2 (which would initialise CUDA) or the OpenAI client.
    script = textwrap.dedent(
        """
        import sys
        from datetime import date
        import dagster as dg
        from chaffee_assets.defs.transcription_resources import (
            GPU_POOL, LocalWhisperResource, OpenAIWhisperResource, TranscriptionPolicyResource)

        @dg.asset(pool=GPU_POOL)
        def decides(local_whisper: LocalWhisperResource, openai_whisper: OpenAIWhisperResource,
                    transcription_policy: TranscriptionPolicyResource) -> str:
            return transcription_policy.engine_for(date(2020, 1, 1), date(2025, 1, 1))

        result = dg.materialize([decides], resources={
            "local_whisper": LocalWhisperResource(), "openai_whisper": OpenAIWhisperResource(),
            "transcription_policy": TranscriptionPolicyResource()})
        assert result.success
        assert result.output_for_node("decides") == "local_whisper"
        loaded = sorted(m for m in ("faster_whisper", "ctranslate2", "openai") if m in sys.modules)
        print("loaded:", loaded)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "loaded: []" in done.stdout
    assert GPU_POOL == "gpu"
