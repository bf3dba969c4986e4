"""Test helpers for the web face: a warehouse holding the sample library plus hostile entries, a
stand-in of the chat completions endpoint on 127.0.0.1, and `chaffee serve` run as a user runs it."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

import chaffee_assets
from chaffee_assets.search import embedder_for
from chaffee_assets.warehouse import connect
from chaffee_assets_tests.openai_stand_in import ScriptedOpenAIEndpoint
from chaffee_assets_tests.retrieval_helpers import embed_all, insert_video, segment_video

SAMPLE = Path(chaffee_assets.__file__).resolve().parent / "sample_library"
SAMPLE_IDS = sorted(p.name.removesuffix(".info.json") for p in SAMPLE.glob("*.info.json"))
REPO = Path(__file__).resolve().parent.parent

# A video whose title and captions hold markup, quotes and emoji, as real metadata can.
HOSTILE_ID = "smplHostile"
HOSTILE_TITLE = '<script>alert("title")</script> Steak & "Eggs" it\'s 🥩 <b>bold</b>'
HOSTILE_WORDS = ' zebrafish <img src=x onerror=alert("caption")> & "quoted" 🥩'
HOSTILE_QUERY = "zebrafish"


def fill_sample_warehouse(url: str, library_copy: Path) -> None:
    """The six sample videos plus the hostile one, segmented and embedded with the default model."""
    shutil.copytree(SAMPLE, library_copy)
    info = json.loads((library_copy / "smplMeatDay.info.json").read_text(encoding="utf-8"))
    info.update(id=HOSTILE_ID, title=HOSTILE_TITLE, upload_date="20240701", timestamp=1719835200)
    info["webpage_url"] = f"https://www.youtube.com/watch?v={HOSTILE_ID}"
    (library_copy / f"{HOSTILE_ID}.info.json").write_text(json.dumps(info), encoding="utf-8")
    shutil.copy(library_copy / "smplMeatDay.en.vtt", library_copy / f"{HOSTILE_ID}.en.vtt")
    embedder = embedder_for("all-MiniLM-L6-v2")
    with connect(url) as conn:
        for video_id in [*SAMPLE_IDS, HOSTILE_ID]:
            insert_video(conn, library_copy, video_id)
            segment_video(conn, video_id)
        with conn.transaction():
            conn.execute(
                "UPDATE segments SET text = text || %s WHERE video_id = %s", (HOSTILE_WORDS, HOSTILE_ID)
            )
        embed_all(conn, embedder)


def new_database(admin_url: str, prefix: str) -> str:
    from chaffee_assets.warehouse.migrate import upgrade

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = admin_url.replace("/postgres?", f"/{name}?", 1)
    upgrade(url)
    return url


# -- the chat model's stand-in ----------------------------------------------------------------------

_PASSAGE = re.compile(r"^\[(\d+)\] \"(.*)\" \((.*), at (.*)\)\n(.*)$", re.MULTILINE)


def cite_first_two(messages: list[dict[str, str]]) -> str:
    """A faithful model: from each of the first two passages, the sentence sharing most words with
    the question, quoted and cited."""
    user = messages[-1]["content"]
    question = set(re.findall(r"[a-z]{3,}", user.split("\n", 1)[0].lower()))
    passages = _PASSAGE.findall(user)
    sentences = []
    for number, _title, _day, _at, text in passages[:2]:
        candidates = [s.strip() for s in re.split(r"(?<=[.?!])\s+", text) if len(s.split()) >= 5]
        best = max(
            candidates or [text], key=lambda s: len(question & set(re.findall(r"[a-z]{3,}", s.lower())))
        )
        sentences.append(f'He says: "{" ".join(best.split()[:30])}" [{number}]')
    return " ".join(f"{sentence}." for sentence in sentences)


class ChatStandIn(ScriptedOpenAIEndpoint):
    """Answers `POST /v1/chat/completions` like the API: a 200 answers with `reply(messages)` and
    token usage."""

    rate_limit_headers = {"retry-after": "7", "retry-after-ms": "10"}

    def __init__(self, reply: Callable[[list[dict[str, str]]], str] = cite_first_two) -> None:
        self.reply = reply
        super().__init__()

    def parse(self, content_type: str, body: bytes) -> dict[str, object]:
        return json.loads(body)

    def answer(self, fields: dict[str, object]) -> dict[str, object]:
        messages = fields["messages"]
        prompt_tokens = sum(len(m["content"]) for m in messages) // 4  # type: ignore[union-attr]
        return _completion(fields["model"], self.reply(messages), prompt_tokens)  # type: ignore[arg-type]


def _completion(model: str, content: str, prompt_tokens: int) -> dict[str, object]:
    completion_tokens = max(1, len(content) // 4)
    return {
        "id": "chatcmpl-standin",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


# -- `chaffee serve` as a subprocess -------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def chaffee_command() -> str:
    return str(Path(sys.executable).parent / "chaffee")


@dataclass
class RunningServer:
    process: subprocess.Popen
    base_url: str
    output: list[str]

    def get(
        self, path: str, timeout: float = 30, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        request = urllib.request.Request(self.base_url + path, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()


@contextlib.contextmanager
def chaffee_serve(
    env: dict[str, str],
    *extra: str,
    command: str = "serve",
    startup_s: float = 180,
    argv: Callable[[int], list[str]] | None = None,
) -> Iterator[RunningServer]:
    """`chaffee serve --port P` (or another command that ends by serving: `argv(port)`, such as
    `make demo PORT=P`) in its own session; yields once /healthz answers, then stops it with Ctrl-C."""
    port = free_port()
    process = subprocess.Popen(
        argv(port) if argv else [chaffee_command(), command, "--port", str(port), *extra],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(iter(process.stdout.readline, "")), daemon=True)
    reader.start()
    server = RunningServer(process, f"http://127.0.0.1:{port}", output)
    try:
        deadline = time.monotonic() + startup_s
        while True:
            if process.poll() is not None:
                reader.join(5)
                raise AssertionError(f"chaffee serve exited with {process.returncode}:\n{''.join(output)}")
            try:
                if server.get("/healthz", timeout=5)[0] in (200, 503):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"chaffee serve did not answer within {startup_s} s:\n{''.join(output)}")
            time.sleep(0.5)
        yield server
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)
        reader.join(5)


def serve_env(database_url: str, **extra: str) -> dict[str, str]:
    """The user's environment with the warehouse (and any answer settings) set; no stray OpenAI key."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "CHAFFEE_ANSWER_"))}
    env["DATABASE_URL"] = database_url
    env["HF_HUB_OFFLINE"] = "1"
    env.update(extra)
    return env
