"""Which asset failures the retry policy may retry: only those that waiting can change.

A retry policy waits and tries again; that helps when the database dropped the connection or the
network blinked, and never when the data is bad, a constraint refuses a row or the code has a bug:
those would fail the same way three more times, minutes apart. Requests to YouTube are retried by
the source's own pacer (`chaffee_assets.ingest.youtube.pacing`); once it gives up, retrying the
whole step would stack a second round of retries on the first, so its errors are not retried here
either: the daily schedule tries the day again.
"""

from __future__ import annotations

import functools
import inspect
import urllib.error
from collections.abc import Callable
from typing import Any, TypeVar

import dagster as dg
import psycopg

from chaffee_assets.error_text import one_line

F = TypeVar("F", bound=Callable[..., Any])


def is_transient(exc: BaseException) -> bool:
    """Whether trying again after a wait can succeed where this attempt failed."""
    from chaffee_assets.warehouse.server import WarehouseError

    if isinstance(exc, WarehouseError):
        return exc.transient
    if isinstance(exc, psycopg.OperationalError | psycopg.errors.TransactionRollback):
        return True  # a lost connection, a server restart, a serialisation failure or deadlock
    return isinstance(exc, ConnectionError | TimeoutError | urllib.error.URLError)


def retry_only_transient(asset_fn: F) -> F:
    """Wrap an asset body so every failure is one line, and only a transient one is retried.

    A generator body (an asset that yields its result and check evaluations) stays a generator,
    so Dagster reads its events the same way and a failure while iterating is caught too.
    """

    def classified(exc: Exception) -> dg.Failure:
        transient = is_transient(exc)
        what = "retried after a wait" if transient else "not retried: running again cannot change it"
        return dg.Failure(
            description=f"{type(exc).__name__}: {one_line(exc)} ({what})", allow_retries=transient
        )

    if inspect.isgeneratorfunction(asset_fn):

        @functools.wraps(asset_fn)
        def events(*args: Any, **kwargs: Any) -> Any:
            try:
                yield from asset_fn(*args, **kwargs)
            except dg.Failure:
                raise
            except Exception as exc:
                raise classified(exc) from exc

        return events  # type: ignore[return-value]

    @functools.wraps(asset_fn)
    def body(*args: Any, **kwargs: Any) -> Any:
        try:
            return asset_fn(*args, **kwargs)
        except dg.Failure:
            raise
        except Exception as exc:
            raise classified(exc) from exc

    return body  # type: ignore[return-value]
