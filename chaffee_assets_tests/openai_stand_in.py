"""A local server that answers like the OpenAI API, for testing the real `openai` client at its
boundary: each request takes the next scripted status (200 once the script runs out), and 429 and
5xx answer with the API's own error bodies, so the client's retries and error classes are real."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class ScriptedOpenAIEndpoint:
    """Subclasses say how a request's body reads (`parse`) and what a 200 answers (`answer`)."""

    # What a 429 carries besides its body: the client waits `retry-after-ms` before retrying.
    rate_limit_headers: dict[str, str] = {"retry-after-ms": "10"}

    def __init__(self) -> None:
        self.script: list[int] = []
        self.requests: list[dict[str, Any]] = []  # every request that reached the server
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                fields = endpoint.parse(self.headers["Content-Type"], body)
                endpoint.requests.append(
                    {"path": self.path, "auth": self.headers.get("Authorization"), **fields}
                )
                status = endpoint.script.pop(0) if endpoint.script else 200
                if status == 200:
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

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
