"""Settings: every documented variable parsed in one place, with its default, and a bad value named in one line."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from chaffee_assets.settings import (
    ENVIRONMENT_VARIABLES,
    PROJECT_ROOT,
    Settings,
    SettingsError,
    settings,
)

CHAFFEE = str(Path(sys.executable).parent / "chaffee")


def test_defaults_are_the_documented_ones():
    config = Settings.from_env({})
    assert config.home == PROJECT_ROOT / ".chaffee"
    assert config.start_date == date(2015, 1, 1)
    assert config.daily_budget_usd == 5.0 and config.local_after_days == 7
    assert config.daily_schedule_cron == "30 6 * * *" and config.schedule_timezone == "UTC"
    assert config.retry_partitions_per_tick == 14
    assert (config.feed_sensor_interval_s, config.feed_first_tick_days, config.feed_timeout_s) == (
        900,
        2,
        20.0,
    )
    assert config.embedding_model == "all-MiniLM-L6-v2" and config.library_dir is None
    assert config.channel_id == "UCzoRyR_nlesKZuOlEjWRXQQ" and config.golden_queries is None


def test_every_variable_the_readme_documents_is_a_setting():
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("## Configuration", 1)[1].split("###", 1)[0]
    first_cells = [line.split("|")[1] for line in table.splitlines() if line.startswith("| `")]
    documented = {name for cell in first_cells for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", cell)}
    assert "CHAFFEE_START_DATE" in documented
    assert documented <= set(ENVIRONMENT_VARIABLES), documented - set(ENVIRONMENT_VARIABLES)


def test_every_setting_is_documented_for_the_operator():
    docs = [PROJECT_ROOT / "README.md", *sorted((PROJECT_ROOT / "docs").glob("*.md"))]
    text = "\n".join(path.read_text(encoding="utf-8") for path in docs)
    undocumented = [name for name in ENVIRONMENT_VARIABLES if f"`{name}`" not in text]
    assert not undocumented, undocumented


def test_values_are_parsed_into_their_types(tmp_path):
    config = Settings.from_env(
        {
            "CHAFFEE_HOME": str(tmp_path),
            "CHAFFEE_START_DATE": "2016-03-01",
            "CHAFFEE_DAILY_BUDGET_USD": "12.5",
            "CHAFFEE_RETRY_PARTITIONS_PER_TICK": " 3 ",
            "CHAFFEE_SCHEDULE_TIMEZONE": "Europe/London",
            "CHAFFEE_LIBRARY_DIR": str(tmp_path / "lib"),
            "CHAFFEE_WHISPER_BATCH_SIZE": "0",
            "CHAFFEE_DB_SHARED_BUFFERS": "512 MB",
        }
    )
    assert config.home == tmp_path and config.library_dir == tmp_path / "lib"
    assert config.start_date == date(2016, 3, 1) and config.daily_budget_usd == 12.5
    assert config.retry_partitions_per_tick == 3 and config.schedule_timezone == "Europe/London"
    assert config.whisper_batch_size is None  # 0 means the device's default
    assert config.db_shared_buffers == "512MB"  # as PostgreSQL writes it


@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        ("CHAFFEE_START_DATE", "2015-13-01", "is not a date (YYYY-MM-DD)"),
        ("CHAFFEE_DAILY_BUDGET_USD", "five", "is not a number"),
        ("CHAFFEE_DAILY_BUDGET_USD", "-1", "must be a number of at least 0"),
        ("CHAFFEE_LOCAL_AFTER_DAYS", "7.5", "is not a whole number"),
        ("CHAFFEE_FEED_SENSOR_INTERVAL_S", "0", "must be a whole number above 0"),
        ("CHAFFEE_SCHEDULE_TIMEZONE", "Mars/Olympus", "is not an IANA time zone"),
        ("CHAFFEE_DAILY_SCHEDULE_CRON", "every morning", "is not a cron expression"),
        ("CHAFFEE_DB_SHARED_BUFFERS", "2", "is not a size such as 512MB or 2GB"),
        ("CHAFFEE_DB_SHARED_BUFFERS", "64kB", "must be at least 128kB"),
    ],
)
def test_a_malformed_value_names_the_variable_in_one_line(variable, value, reason):
    with pytest.raises(SettingsError) as error:
        Settings.from_env({variable: value})
    message = str(error.value)
    assert message.startswith(f"{variable}={value!r} {reason}")
    assert "\n" not in message


def test_settings_follow_the_environment_without_rereading_it_each_time(monkeypatch):
    monkeypatch.setenv("CHAFFEE_RETRY_PARTITIONS_PER_TICK", "5")
    first = settings()
    assert first.retry_partitions_per_tick == 5
    assert settings() is first  # parsed once for this environment
    monkeypatch.setenv("CHAFFEE_RETRY_PARTITIONS_PER_TICK", "6")
    assert settings().retry_partitions_per_tick == 6


def test_a_command_given_a_malformed_setting_prints_one_line_and_exits_2(chaffee_home):
    env = {**os.environ, "CHAFFEE_START_DATE": "yesterday"}
    result = subprocess.run(
        [CHAFFEE, "ingest", "--library", str(PROJECT_ROOT / "chaffee_assets" / "sample_library")],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr == "error: CHAFFEE_START_DATE='yesterday' is not a date (YYYY-MM-DD)\n"
