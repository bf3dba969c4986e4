"""Benchmark: what `/metrics` and the question log cost a search, against the same server without them.

    python bench/bench_watch.py [--rounds 15] [--clients 4]

Fills a fresh warehouse database with the bundled sample library and builds two applications on it in
this process: the server as it ships (the metrics middleware and the question log on) and the same
server without them (the middleware removed, `question_log=False`). Rounds alternate between the two,
so both see the same machine load; each round, `--clients` threads ask the sample's golden questions
through `/api/search` and the page. Prints p50/p95 of each and their ratio, and checks that every
question the shipped server answered reached `question_log`. Then measures, in isolation, what the
two add to one request: the metrics middleware around a do-nothing ASGI app against the app alone, and
the route's hook (metrics and the question log's queue put) for one search's hits.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fastapi.testclient import TestClient  # noqa: E402

from chaffee_assets.warehouse import connect  # noqa: E402
from chaffee_assets.warehouse.server import embedded_server_uri  # noqa: E402
from chaffee_assets.web import create_app  # noqa: E402
from chaffee_assets.web.metrics import MetricsMiddleware  # noqa: E402
from chaffee_assets.web.settings import WebSettings  # noqa: E402
from chaffee_assets_tests.web_helpers import SAMPLE, fill_sample_warehouse, new_database  # noqa: E402


def app_for(url: str, *, watched: bool) -> TestClient:
    app = create_app(WebSettings(rate_limit_per_minute=1_000_000, question_log=watched), database_url=url)
    if not watched:
        app.user_middleware = [m for m in app.user_middleware if m.cls is not MetricsMiddleware]
    return TestClient(app)


def one_round(client: TestClient, questions: list[str], clients: int, latencies: list[float]) -> None:
    lock = threading.Lock()

    def ask(worker: int) -> None:
        for i, question in enumerate(questions):
            path = "/api/search" if (i + worker) % 2 == 0 else "/"
            started = time.perf_counter()
            response = client.get(path, params={"q": question})
            elapsed = time.perf_counter() - started
            assert response.status_code == 200, response.text[:200]
            with lock:
                latencies.append(elapsed)

    threads = [threading.Thread(target=ask, args=(w,)) for w in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def isolated_costs(url: str, hits: list[dict[str, object]], calls: int = 5000) -> tuple[float, float]:
    """Microseconds per request that the middleware and the search hook add, measured alone."""
    import asyncio

    from starlette.requests import Request

    from chaffee_assets.web import observe
    from chaffee_assets.web.queries import SearchRequest
    from chaffee_assets.web.question_log import QuestionLog

    async def bare(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def nothing(message) -> None:  # type: ignore[no-untyped-def]
        return None

    async def receive() -> dict[str, object]:
        return {"type": "http.request"}

    scope = {"type": "http", "method": "GET", "path": "/api/search", "headers": []}

    async def timed(app) -> float:  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        for _ in range(calls):
            await app(dict(scope), receive, nothing)
        return time.perf_counter() - started

    middleware_s = asyncio.run(timed(MetricsMiddleware(bare))) - asyncio.run(timed(bare))

    class State:
        question_log = QuestionLog(url, enabled=True)  # not started: records stay on the queue

    class App:
        state = State()

    request = Request({**scope, "app": App(), "client": ("203.0.113.7", 50000)})
    search = SearchRequest("does high LDL cholesterol cause heart attacks")
    started = time.perf_counter()
    for _ in range(calls):
        observe.searched(request, search, hits, time.perf_counter())
    hook_s = time.perf_counter() - started
    return middleware_s / calls * 1e6, hook_s / calls * 1e6


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    if os.environ.get("DATABASE_URL"):
        raise SystemExit(
            "run against the embedded server (unset DATABASE_URL): the bench makes its own database"
        )
    url = new_database(embedded_server_uri("postgres"), "bench_watch")
    import tempfile

    fill_sample_warehouse(url, Path(tempfile.mkdtemp()) / "library")
    questions = [
        json.loads(line)["question"]
        for line in (SAMPLE / "golden_queries.jsonl").read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    latencies: dict[bool, list[float]] = {False: [], True: []}
    with app_for(url, watched=False) as bare, app_for(url, watched=True) as watched:
        for client in (bare, watched):  # warm both
            one_round(client, questions, 1, [])
        for round_number in range(args.rounds):
            order = (False, True) if round_number % 2 == 0 else (True, False)
            for is_watched in order:
                one_round(watched if is_watched else bare, questions, args.clients, latencies[is_watched])
        watched.app.state.question_log.flush()  # type: ignore[attr-defined]
    with connect(url) as conn:
        logged = conn.execute("SELECT count(*) FROM question_log").fetchone()[0]
    with app_for(url, watched=False) as bare:
        hits = bare.get("/api/search", params={"q": questions[0]}).json()["hits"]
    middleware_us, hook_us = isolated_costs(url, hits)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(f"{args.rounds} rounds x {args.clients} clients x {len(questions)} questions, alternating servers")
    for is_watched, label in ((False, "without metrics and question log"), (True, "with both (as shipped)")):
        values = latencies[is_watched]
        print(
            f"{label:34s} n={len(values)} p50 {percentile(values, 50):6.1f} ms  p95 {percentile(values, 95):6.1f} ms"
        )
    ratio = percentile(latencies[True], 95) / percentile(latencies[False], 95)
    print(
        f"p95 ratio with/without: {ratio:.2f}; questions recorded: {logged} of {len(latencies[True]) + len(questions)}"
    )
    print(
        f"alone: the metrics middleware adds {middleware_us:.1f} us a request, the search hook {hook_us:.1f} us"
    )


if __name__ == "__main__":
    main()
