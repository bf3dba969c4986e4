"""A TCP proxy in front of a PostgreSQL Unix socket that can cut every connection, for outage drills.

The embedded server listens on a Unix socket only; clients that connect to 127.0.0.1:`port` are
forwarded to it byte for byte. `cut()` closes every forwarded connection and turns new ones away
(accepted, then closed at once: the client sees the server hang up), until `restore()`. `freeze()`
holds every byte in both directions without closing anything (a server that stopped answering),
until `thaw()`.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from pathlib import Path
from types import TracebackType
from urllib.parse import parse_qs, urlsplit, urlunsplit


def unix_socket_of(url: str) -> Path:
    """The socket file of a `postgresql://…?host=/socket/dir` URL."""
    parts = urlsplit(url)
    directory = Path(parse_qs(parts.query)["host"][0])
    port = parts.port or 5432
    return directory / f".s.PGSQL.{port}"


def tcp_url(url: str, port: int) -> str:
    """The same database, user and password as `url`, reached at 127.0.0.1:`port` instead."""
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@127.0.0.1:{port}" if credentials else f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=netloc, query=""))


class UnixSocketProxy:
    """Forwards 127.0.0.1:`port` to a Unix socket; use as a context manager."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._refusing = False
        self._flowing = threading.Event()
        self._flowing.set()
        self._stopped = threading.Event()
        self._acceptor = threading.Thread(target=self._accept_loop, name="pg-proxy-accept", daemon=True)

    def __enter__(self) -> UnixSocketProxy:
        self._acceptor.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stopped.set()
        self._listener.close()
        self._close_all()

    @property
    def connections(self) -> int:
        """How many client connections are being forwarded now."""
        with self._lock:
            return len(self._open) // 2

    def cut(self) -> None:
        """Drop every forwarded connection and turn new ones away until `restore()`."""
        with self._lock:
            self._refusing = True
        self._close_all()

    def restore(self) -> None:
        with self._lock:
            self._refusing = False

    def freeze(self) -> None:
        """Stop forwarding, keeping every connection open: requests go out and nothing comes back."""
        self._flowing.clear()

    def thaw(self) -> None:
        self._flowing.set()

    def _close_all(self) -> None:
        with self._lock:
            sockets, self._open = list(self._open), set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept_loop(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # the listener was closed
            with self._lock:
                refusing = self._refusing
            if refusing:
                client.close()
                continue
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                upstream.connect(str(self.target))
            except OSError:
                client.close()
                upstream.close()
                continue
            with self._lock:
                self._open.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                while not self._flowing.wait(0.2):
                    if self._stopped.is_set():
                        return
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            # Either side hanging up ends the pair: the other side sees the connection close.
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            with self._lock:
                self._open.discard(source)
                self._open.discard(sink)
