"""Stand-ins for where alerts go, on 127.0.0.1: a Slack-style incoming webhook and an SMTP server."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller


@dataclass
class WebhookReceiver:
    """Records each POSTed JSON body; answers `status` (200 unless a test wants a failing hook)."""

    url: str = ""
    texts: list[str] = field(default_factory=list)
    status: int = 200

    def titles(self) -> list[str]:
        return [text.splitlines()[0] for text in self.texts]


@contextmanager
def webhook_receiver(path: str = "/services/T000/B000/hooksecret") -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the standard library's name)
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.path == path:
                receiver.texts.append(json.loads(body)["text"])
            status = receiver.status if self.path == path else 404
            self.send_response(status)
            self.end_headers()
            self.wfile.write(b"ok" if status == 200 else b"no")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}{path}"
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class MailReceiver:
    host: str = "127.0.0.1"
    port: int = 0
    messages: list[Message] = field(default_factory=list)

    def subjects(self) -> list[str]:
        return [str(message["Subject"]).replace("\r\n", "") for message in self.messages]


class _Collect:
    def __init__(self, receiver: MailReceiver) -> None:
        self.receiver = receiver

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:  # noqa: N802
        self.receiver.messages.append(message_from_bytes(envelope.content))  # type: ignore[attr-defined]
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def smtp_receiver() -> Iterator[MailReceiver]:
    receiver = MailReceiver(port=_free_port())
    controller = Controller(_Collect(receiver), hostname="127.0.0.1", port=receiver.port)
    controller.start()
    try:
        yield receiver
    finally:
        controller.stop()
