"""How a run's steps execute: in the run's process by default, or on Celery workers when the
deployment's configuration says so (`CHAFFEE_EXECUTOR_CONFIG`), with no change to the code.

The file is the executor block of a run config, as `dagster-celery worker start -y FILE` also reads
it, so the workers and the runs are configured from one file (deploy/celery.yaml):

    execution:
      config:
        broker: {env: CHAFFEE_CELERY_BROKER_URL}
        backend: {env: CHAFFEE_CELERY_BROKER_URL}

Which queue a step goes to is the step's `dagster-celery/queue` tag: `transcripts` (the step that may
hold the GPU) says `gpu`, every other step goes to Celery's default queue, `dagster`.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import yaml

EXECUTOR_CONFIG_ENV = "CHAFFEE_EXECUTOR_CONFIG"
# The queue of the steps that may run local Whisper; workers on GPU hosts listen on it.
GPU_QUEUE = "gpu"
GPU_QUEUE_TAGS = {"dagster-celery/queue": GPU_QUEUE}


class ExecutorConfigError(ValueError):
    """The executor configuration file is missing or malformed (one line, naming the file)."""


def executor_from_env() -> dg.ExecutorDefinition:
    """In-process unless `CHAFFEE_EXECUTOR_CONFIG` names a Celery executor file."""
    path = os.environ.get(EXECUTOR_CONFIG_ENV, "").strip()
    if not path:
        # A run's steps depend on each other (videos → transcripts → segments → embeddings), so they
        # never run side by side: one process per run sets up the embedding model and connections
        # once, where the default executor would start a process, and load torch, for every step.
        return dg.in_process_executor
    return celery_executor_from_file(Path(path))


def celery_executor_from_file(path: Path) -> dg.ExecutorDefinition:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ExecutorConfigError(f"{EXECUTOR_CONFIG_ENV}={path}: cannot read it ({exc})") from exc
    execution = document.get("execution") if isinstance(document, dict) else None
    config = execution.get("config") if isinstance(execution, dict) else None
    if not isinstance(config, dict):
        raise ExecutorConfigError(f"{EXECUTOR_CONFIG_ENV}={path}: expected an `execution: config:` block")
    try:
        from dagster_celery import celery_executor
    except ImportError as exc:
        raise ExecutorConfigError(
            f"{EXECUTOR_CONFIG_ENV}={path} asks for Celery, but dagster-celery is not installed "
            "(pip install 'chaffee_assets[deploy]')"
        ) from exc
    return celery_executor.configured(config, name="celery_executor")
