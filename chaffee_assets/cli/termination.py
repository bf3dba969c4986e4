"""SIGTERM for `chaffee` commands: stop where they are, even while Dagster runs in this process.

A command outside Dagster gets `Terminated` raised like Ctrl-C's KeyboardInterrupt. During an
in-process run Dagster takes SIGINT and SIGTERM over: the signal interrupts the running step and
fails that run, and Dagster restores its own choice of handler afterwards, so a command that runs
one range of days after another would simply start the next. The signal's number is still written
to Python's wakeup file descriptor whichever handler runs, so such a command watches that between
runs (`watching_for_sigterm`).
"""

from __future__ import annotations

import contextlib
import signal
import socket
from collections.abc import Callable, Iterator


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so a command stops where it is and cleans up on the way out."""


def raise_terminated(signum: int, frame: object) -> None:
    raise Terminated()


def install() -> None:
    """Make SIGTERM raise `Terminated` in the main thread."""
    signal.signal(signal.SIGTERM, raise_terminated)


@contextlib.contextmanager
def watching_for_sigterm() -> Iterator[Callable[[], bool]]:
    """A function telling whether SIGTERM arrived since the block began (call it between runs).

    Each call also re-installs `Terminated` for SIGTERM, since a Dagster run leaves its own handler.
    """
    reader, writer = socket.socketpair()
    reader.setblocking(False)
    writer.setblocking(False)
    previous = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    seen = False

    def terminated() -> bool:
        nonlocal seen
        with contextlib.suppress(BlockingIOError):
            while data := reader.recv(512):
                seen = seen or signal.SIGTERM in data
        install()
        return seen

    try:
        yield terminated
    finally:
        signal.set_wakeup_fd(previous)
        reader.close()
        writer.close()
