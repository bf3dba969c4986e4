"""The server's way to the warehouse: its connection pool behind a circuit breaker, so that a dead
database costs a request about a second at most, and service returns on its own when it is back.

Closed (normal): connections come from the pool, waiting at most ACQUIRE_TIMEOUT_S for one. When no
connection comes in time or one breaks in use, a probe connects directly (bounded to PROBE_TIMEOUT_S):
a database that answers the probe was only busy; one that does not opens the circuit. Open: every
request is refused at once for OPEN_S. Then the next request probes again; when the probe succeeds, a
fresh pool replaces the old one (whose reconnection attempts back off to a minute and more).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from chaffee_assets.error_text import one_line

log = logging.getLogger(__name__)

ACQUIRE_TIMEOUT_S = 1.0
PROBE_TIMEOUT_S = 1.0
OPEN_S = 3.0
STARTUP_TIMEOUT_S = 10.0
# libpq's smallest connect timeout; the probe's own wait is shorter (PROBE_TIMEOUT_S).
CONNECT_TIMEOUT_S = 2


class WarehouseUnavailable(Exception):
    """The warehouse cannot be reached now; `retry_after_s` says when to try again."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"the warehouse is unavailable; try again in {retry_after_s} s")
        self.retry_after_s = retry_after_s


class WarehouseBusy(Exception):
    """Every connection of the pool stayed in use for ACQUIRE_TIMEOUT_S (the database itself answers)."""

    retry_after_s = 1

    def __init__(self) -> None:
        super().__init__("the server is busy; try again in a second")


class WarehouseGate:
    def __init__(
        self,
        database_url: str,
        *,
        pool_size: int,
        configure: Callable[[psycopg.Connection], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.database_url = database_url
        self._pool_size = pool_size
        self._configure = configure
        self._clock = clock
        self._lock = threading.Lock()
        self._open_until = 0.0
        self._tripped = False
        self._probing = False
        self._pool = self._new_pool()

    def _new_pool(self) -> ConnectionPool:
        return ConnectionPool(
            self.database_url,
            min_size=1,
            max_size=self._pool_size,
            kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT_S},
            configure=self._configure,
            # A connection that died (a database restart) is replaced instead of failing a request.
            check=ConnectionPool.check_connection,
            timeout=ACQUIRE_TIMEOUT_S,
            open=False,
            name="chaffee-web",
        )

    def open(self) -> None:
        self._pool.open(wait=True, timeout=STARTUP_TIMEOUT_S)

    def close(self) -> None:
        self._pool.close()

    @property
    def is_open(self) -> bool:
        """Whether requests are being refused without trying the database."""
        with self._lock:
            return self._tripped

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        """A pooled connection (autocommit), or WarehouseUnavailable / WarehouseBusy within about a second."""
        pool = self._admit()
        try:
            conn = pool.getconn(timeout=ACQUIRE_TIMEOUT_S)
        except (PoolTimeout, PoolClosed, psycopg.OperationalError) as exc:
            raise self._failed(exc) from exc
        try:
            yield conn
        except psycopg.OperationalError as exc:
            if conn.broken or conn.closed:
                raise self._failed(exc) from exc
            raise
        finally:
            pool.putconn(conn)

    def _admit(self) -> ConnectionPool:
        with self._lock:
            now = self._clock()
            if now < self._open_until:
                raise WarehouseUnavailable(max(1, math.ceil(self._open_until - now)))
            if not self._tripped:
                return self._pool
            if self._probing:
                raise WarehouseUnavailable(1)
            self._probing = True
        try:
            reachable = self._probe()
        finally:
            with self._lock:
                self._probing = False
        if not reachable:
            raise self._trip()
        with self._lock:
            old, self._pool = self._pool, self._new_pool()
            self._pool.open(wait=False)
            self._tripped = False
            pool = self._pool
        log.warning("the warehouse answers again; serving")
        threading.Thread(target=old.close, kwargs={"timeout": 1.0}, daemon=True).start()
        return pool

    def _failed(self, exc: BaseException) -> Exception:
        """The error for a request whose connection failed: busy if the database answers, else open."""
        if self._probe():
            return WarehouseBusy() if isinstance(exc, PoolTimeout) else WarehouseUnavailable(1)
        log.warning("the warehouse is unreachable (%s); refusing requests for %.0f s", one_line(exc), OPEN_S)
        return self._trip()

    def _trip(self) -> WarehouseUnavailable:
        with self._lock:
            self._tripped = True
            self._open_until = self._clock() + OPEN_S
        return WarehouseUnavailable(math.ceil(OPEN_S))

    def _probe(self) -> bool:
        """Whether a new connection opens and answers within PROBE_TIMEOUT_S."""
        outcome: list[bool] = []

        def attempt() -> None:
            try:
                with psycopg.connect(self.database_url, connect_timeout=CONNECT_TIMEOUT_S) as conn:
                    conn.execute("SELECT 1")
                outcome.append(True)
            except psycopg.Error:
                outcome.append(False)

        # On a thread, so that a host that swallows packets costs PROBE_TIMEOUT_S, not libpq's minimum.
        prober = threading.Thread(target=attempt, name="warehouse-probe", daemon=True)
        prober.start()
        prober.join(PROBE_TIMEOUT_S)
        return bool(outcome and outcome[0])
