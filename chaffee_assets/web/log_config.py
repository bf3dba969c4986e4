"""How `chaffee serve` logs: uvicorn's own format, application records at INFO, and every record
passed through the same redaction as everything else the server shows (`error_text.redact`)."""

from __future__ import annotations

import copy
import logging
import traceback
from typing import Any

from chaffee_assets.error_text import redact


class RedactingFilter(logging.Filter):
    """Rewrites a record's message (and its traceback) with every password and key hidden."""

    def filter(self, record: logging.LogRecord) -> bool:
        # Arguments are redacted one by one: formatters such as uvicorn's access log read them.
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redacted(value) for value in record.args)
        elif isinstance(record.args, dict):
            record.args = {key: _redacted(value) for key, value in record.args.items()}
        if record.exc_info and not record.exc_text:
            record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def _redacted(value: object) -> object:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, BaseException):
        return redact(f"{type(value).__name__}: {value}" if not str(value) else str(value))
    return value


def log_config() -> dict[str, Any]:
    """uvicorn's logging configuration with the redacting filter on every handler, and a root logger
    (WARNING; this package at INFO) so that application records reach the same handlers."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["redact"] = {"()": RedactingFilter}
    for handler in config["handlers"].values():
        handler.setdefault("filters", []).append("redact")
    config["root"] = {"handlers": ["default"], "level": "WARNING"}
    config["loggers"]["chaffee_assets"] = {"level": "INFO"}
    return config
