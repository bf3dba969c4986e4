"""Where the project keeps its state, read from the environment with documented defaults."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CHANNEL_URL = "https://www.youtube.com/@anthonychaffeemd"
DEFAULT_CHANNEL_ID = "UCzoRyR_nlesKZuOlEjWRXQQ"
DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2"


class SettingsError(ValueError):
    """A setting (an environment variable) whose value cannot be used.

    The message names the variable, the value it holds and what it accepts, in one line; every
    `chaffee` command prints it as `error: …` instead of a traceback.
    """


def chaffee_home() -> Path:
    """The project-local folder for the embedded database and Dagster's local files.

    `CHAFFEE_HOME` overrides it; otherwise `.chaffee/` beside `pyproject.toml` in a source checkout,
    or in the working directory for an installed package.
    """
    configured = os.environ.get("CHAFFEE_HOME")
    if configured:
        return Path(configured).expanduser().resolve()
    if (PROJECT_ROOT / "pyproject.toml").exists():
        return PROJECT_ROOT / ".chaffee"
    return Path.cwd() / ".chaffee"
