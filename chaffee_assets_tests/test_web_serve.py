"""`chaffee serve` run the way a user runs it: a subprocess with the user's environment."""

from __future__ import annotations

import json
import socket
import subprocess

from chaffee_assets_tests.web_helpers import REPO, chaffee_command, chaffee_serve, new_database, serve_env


def test_on_an_empty_warehouse_it_serves_and_says_nothing_is_indexed(embedded_admin_url: str) -> None:
    url = new_database(embedded_admin_url, "serve_empty")
    with chaffee_serve(serve_env(url)) as server:
        status, headers, body = server.get("/")
        health = json.loads(server.get("/healthz")[2])
        search = json.loads(server.get("/api/search?q=salt")[2])
        answer_status, _, answer = server.get("/api/answer?q=salt")
    assert status == 200 and "Nothing is indexed yet" in body.decode()
    assert "content-security-policy" in {k.lower() for k in headers}
    assert health["status"] == "ok" and health["segments"] == 0
    assert search["hits"] == []
    assert answer_status == 503 and "OPENAI_API_KEY" in json.loads(answer)["error"]
    output = "".join(server.output)
    assert "nothing is indexed yet" in output
    assert f"Search page: {server.base_url}/" in output
    assert "answers: off" in output
    assert server.process.returncode == 0  # Ctrl-C stops it cleanly


def test_a_port_in_use_is_one_error_line(embedded_admin_url: str) -> None:
    url = new_database(embedded_admin_url, "serve_port")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [chaffee_command(), "serve", "--port", str(port)],
            env=serve_env(url),
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 2
    assert (
        done.stderr
        == f"error: port {port} on 127.0.0.1 is in use (another server?): choose one with --port\n"
    )


def test_a_bad_setting_is_one_error_line(embedded_admin_url: str) -> None:
    url = new_database(embedded_admin_url, "serve_settings")
    done = subprocess.run(
        [chaffee_command(), "serve", "--port", "8765"],
        env=serve_env(url, CHAFFEE_ANSWER_BUDGET_USD="lots"),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr == ("error: CHAFFEE_ANSWER_BUDGET_USD='lots' is not a number\n")
