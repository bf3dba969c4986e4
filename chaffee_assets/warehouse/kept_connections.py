"""Warehouse connections kept open between the asset steps and runs of one process.

Every asset step needs the warehouse. With new connections for each step, a `chaffee ingest` of the
dev library opened 452, and for each the server started and ended a backend process and loaded its
catalog caches again for the first statements: about 11 CPU-s in all, the largest share of the
embedded server's CPU in that ingest (docs/retrieval.md). Here a finished step's connection waits
for the next one instead.

Only a connection that is healthy and outside any transaction is kept, and it is checked with an
empty query before it is used again, so a server restarted in between costs one reconnect, not a
failed step. Connections are opened by `server.connect`, so an unreachable server still gets its
one-line explanation. Store functions set nothing for the session (the search function's settings
are the function's own, or local to its transaction), so a reused connection behaves as a new one.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from chaffee_assets.warehouse.server import connect

# Idle connections kept, across every database URL (a process that moves to another database
# closes the oldest). The in-process executor runs one step at a time; the second is for a session
# opened while another is open.
KEPT = 2

_idle: list[tuple[str, psycopg.Connection]] = []  # oldest first
_lock = threading.Lock()


@contextmanager
def warehouse_connection(url: str) -> Iterator[psycopg.Connection]:
    """An autocommit connection to `url`, pgvector's types registered: a kept one when one is
    idle and healthy, else a new one. It is kept again afterwards unless the block raised."""
    conn = _take(url) or connect(url, autocommit=True)
    try:
        yield conn
    except BaseException:
        conn.close()  # its state is not known: a failed statement, a lost server
        raise
    _keep(url, conn)


def close_kept_connections() -> None:
    """Close every idle connection (before a database is dropped or its server stopped)."""
    with _lock:
        kept = [conn for _, conn in _idle]
        _idle.clear()
    for conn in kept:
        conn.close()


def _take(url: str) -> psycopg.Connection | None:
    while True:
        with _lock:
            index = next((i for i in range(len(_idle) - 1, -1, -1) if _idle[i][0] == url), None)
            if index is None:
                return None
            _, conn = _idle.pop(index)
        try:
            conn.execute("")  # one round trip: raises if the server ended the connection
            return conn
        except psycopg.Error:
            conn.close()


def _keep(url: str, conn: psycopg.Connection) -> None:
    usable = (
        not conn.closed
        and conn.autocommit
        and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    )
    if not usable:
        conn.close()
        return
    with _lock:
        _idle.append((url, conn))
        evicted = _idle[:-KEPT]
        del _idle[:-KEPT]
    for _, old in evicted:
        old.close()
