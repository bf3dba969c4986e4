"""A local server that answers like the OpenAI API, for testing the real `openai` client at its
boundary: each request takes the next scripted status (`after_script`, 200 by default, once the
script runs out), and 429 and 5xx answer with the API's own error bodies, so the client's retries and
error classes are real. A bad day's answers are scripted too: 401 and 400 echo the key they were sent,
as the API's "Incorrect API key provided" does; HANG holds the request without a byte until `release()` (or
`hang_s`); GARBAGE answers 200 with a body that is not JSON; DROP closes the connection unanswered."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HANG = "hang"
GARBAGE = "garbage"
DROP = "drop"


class ScriptedOpenAIEndpoint:
    """Subclasses say how a request's body reads (`parse`) and what a 200 answers (`answer`)."""

    # What a 429 carries besides its body: the client waits `retry-after-ms` before retrying.
    rate_limit_headers: dict[str, str] = {"retry-after-ms": "10"}

    def __init__(self) -> None:
        self.script: list[int | str] = []
        self.after_script: int | str = 200
        self.hang_s = 60.0
        # Called as each request arrives; what it returns is kept with the request as "observed".
        self.observe: Callable[[], object] | None = None
        self.requests: list[dict[str, Any]] = []  # every request that reached the server
        self._released = threading.Event()
        self._requests_lock = threading.Lock()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                fields = endpoint.parse(self.headers["Content-Type"], body)
                observed = endpoint.observe() if endpoint.observe else None
                auth = self.headers.get("Authorization") or ""
                with endpoint._requests_lock:
                    endpoint.requests.append(
                        {"path": self.path, "auth": auth, "observed": observed, **fields}
                    )
                    status = endpoint.script.pop(0) if endpoint.script else endpoint.after_script
                if status == HANG:
                    endpoint._released.wait(endpoint.hang_s)
                    self.close_connection = True
                elif status == DROP:
                    self.close_connection = True
                elif status == GARBAGE:
                    data = b"<html><body>502 Bad Gateway</body></html>"
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                elif status in (400, 401):
                    key = auth.removeprefix("Bearer ")
                    error = {
                        "message": f"Incorrect API key provided: {key}. You can find your API key at "
                        "https://platform.openai.com/account/api-keys.",
                        "type": "invalid_request_error",
                        "code": "invalid_api_key",
                    }
                    self._send(status, {"error": error}, {})
                elif status == 200:
                    self._send(200, endpoint.answer(fields), {})
                elif status == 429:
                    error = {
                        "message": "Rate limit reached",
                        "type": "requests",
                        "code": "rate_limit_exceeded",
                    }
                    self._send(429, {"error": error}, endpoint.rate_limit_headers)
                else:
                    self._send(
                        status, {"error": {"message": "The server had an error", "type": "server_error"}}, {}
                    )

            def _send(self, status: int, payload: dict, headers: dict[str, str]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def parse(self, content_type: str, body: bytes) -> dict[str, Any]:
        raise NotImplementedError

    def answer(self, fields: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def release(self) -> None:
        """Let every hanging request go (they end without an answer)."""
        self._released.set()

    def hold(self) -> None:
        """Hang requests again (after `release`)."""
        self._released.clear()

    def close(self) -> None:
        self._released.set()
        self.httpd.shutdown()
        self.httpd.server_close()
