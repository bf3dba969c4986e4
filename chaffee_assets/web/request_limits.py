"""Limits on a request's size, answered in the API's error shape: `{"error": "…"}` as JSON.

uvicorn's HTTP parser (h11) refuses a request line and headers over 16 KiB with a plain-text 400 of
its own; `JsonErrorH11Protocol` answers it as JSON instead. h11 checks that size only while a head is
incomplete (one that arrives whole passes), so `RequestSizeMiddleware` refuses, before any route runs,
a URL over MAX_URL_BYTES (414), headers over MAX_HEAD_BYTES (431) and a body over MAX_BODY_BYTES (413):
every route reads only its query string.
"""

from __future__ import annotations

import asyncio
import json

import h11
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

MAX_URL_BYTES = 8 * 1024
MAX_BODY_BYTES = 64 * 1024
# The largest request line plus headers uvicorn's parser holds (its default; the URL limit is below it).
MAX_HEAD_BYTES = 16 * 1024


def error_body(message: str) -> bytes:
    return json.dumps({"error": message}).encode()


class RequestSizeMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        url_bytes = len(scope.get("raw_path") or scope["path"].encode()) + len(scope.get("query_string", b""))
        if url_bytes > MAX_URL_BYTES:
            await _refuse(send, 414, f"the URL is {url_bytes} bytes long; the limit is {MAX_URL_BYTES}")
            return
        headers = scope.get("headers", [])
        header_bytes = sum(len(name) + len(value) + 4 for name, value in headers)
        if header_bytes > MAX_HEAD_BYTES:
            await _refuse(
                send, 431, f"the request's headers are {header_bytes} bytes; the limit is {MAX_HEAD_BYTES}"
            )
            return
        length = dict(headers).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            await _drain(receive)
            await _refuse(
                send, 413, f"the request body is over {MAX_BODY_BYTES} bytes; this API reads no body"
            )
            return
        await self.app(scope, receive, send)


# A refused body is read and dropped first, up to DRAIN_BYTES and for at most DRAIN_S: closing a
# connection with data still unread makes the kernel reset it, and the reset can destroy the 413
# before the client reads it (nginx's "lingering close" answers the same problem).
DRAIN_BYTES = 1024 * 1024
DRAIN_S = 0.5


async def _drain(receive: Receive) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DRAIN_S
    read = 0
    while read < DRAIN_BYTES:
        try:
            message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
        except TimeoutError:
            return
        if message["type"] != "http.request":
            return  # the client went away
        read += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


async def _refuse(send: Send, status: int, message: str) -> None:
    body = error_body(message)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class JsonErrorH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, whose refusal of a malformed or oversize request head is JSON."""

    def send_400_response(self, msg: str) -> None:
        # h11 says only "invalid" (msg is uvicorn's fixed text), so the message names both causes.
        body = error_body(
            f"the request is not valid HTTP or its URL and headers are over {MAX_HEAD_BYTES} bytes"
        )
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        output = self.conn.send(h11.Response(status_code=400, headers=headers, reason=b"Bad Request"))
        self.transport.write(output)
        self.transport.write(self.conn.send(h11.Data(data=body)))
        self.transport.write(self.conn.send(h11.EndOfMessage()))
        self.transport.close()
