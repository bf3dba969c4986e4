"""Benchmark: `chaffee serve` under concurrent clients, against the same search called in-process.

    python bench/bench_serve.py [--clients 4] [--seconds 10] [--library DIR] [--videos N]

Fills a fresh warehouse database with the bundled sample library (or the first N videos of a
library folder), starts `chaffee serve` as a user would, and for a bounded time lets concurrent
clients (keep-alive HTTP, one thread each) ask the sample's golden questions, alternating the JSON
API and the server-rendered page. Prints p50/p95/p99 latency, throughput and errors beside the
baseline measured in the same run: the same searches called in-process (no HTTP, no page). Then
restarts the server with the default rate limit and shows that it holds: a client that asks as
fast as it can gets about a minute's allowance plus the refill, and every refusal is a 429 with
Retry-After.

The mixed run (`--mixed-only` runs it alone) points the server at a stand-in chat endpoint that never
answers, lets `--hung-clients` clients ask for answers over and over (each waiting what a refusal's
Retry-After asks), and meanwhile asks searches at a steady rate (`--rate` a second, open loop: a slow answer
does not slow the asking); the same steady searches on the same server before the answers start are
the plain run it is reported beside.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import statistics
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chaffee_assets.search import embedder_for, search, snippets  # noqa: E402
from chaffee_assets.warehouse import connect  # noqa: E402
from chaffee_assets.warehouse.server import embedded_server_uri  # noqa: E402
from chaffee_assets_tests.openai_stand_in import HANG  # noqa: E402
from chaffee_assets_tests.retrieval_helpers import embed_all, insert_video, segment_video  # noqa: E402
from chaffee_assets_tests.web_helpers import SAMPLE, ChatStandIn, chaffee_serve, new_database, serve_env  # noqa: E402

MODEL = "all-MiniLM-L6-v2"


def fresh_database() -> str:
    if os.environ.get("DATABASE_URL"):
        raise SystemExit(
            "run against the embedded server (unset DATABASE_URL): the bench makes its own database"
        )
    return new_database(embedded_server_uri("postgres"), "bench_serve")


def drop_database(url: str) -> None:
    with psycopg.connect(embedded_server_uri("postgres"), autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(urlsplit(url).path[1:]))
        )


def fill(url: str, library: Path, videos: int | None) -> int:
    ids = sorted(p.name.removesuffix(".info.json") for p in library.glob("*.info.json"))[:videos]
    embedder = embedder_for(MODEL)
    with connect(url) as conn:
        for video_id in ids:
            insert_video(conn, library, video_id)
            segment_video(conn, video_id)
        embed_all(conn, embedder)
        return int(conn.execute("SELECT count(*) FROM segments").fetchone()[0])


def questions() -> list[str]:
    lines = (SAMPLE / "golden_queries.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["question"] for line in lines if line.strip()]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def in_process_baseline(url: str, asked: list[str], rounds: int) -> list[float]:
    """The same work without HTTP: embed the question, run the SQL search, cut the snippets, on one
    thread per question as `chaffee serve` runs it by default."""
    embedder = embedder_for(MODEL, threads=1)
    timings = []
    with connect(url, autocommit=True) as conn:
        for question in asked:  # warm up: the model's first calls and the database's caches
            search(question, 10, conn=conn, embedder=embedder)
        for i in range(rounds):
            question = asked[i % len(asked)]
            t0 = time.perf_counter()
            hits = search(question, 10, conn=conn, embedder=embedder)
            snippets(question, [h.text for h in hits], conn=conn)
            timings.append(time.perf_counter() - t0)
    return timings


def load(base_url: str, asked: list[str], clients: int, seconds: float) -> dict[str, list]:
    host, port = base_url.removeprefix("http://").split(":")
    results: dict[str, list] = {"api": [], "page": [], "errors": []}
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client(index: int) -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        i = index
        while time.monotonic() < stop_at:
            question = asked[i % len(asked)]
            kind = "api" if i % 2 == 0 else "page"
            path = ("/api/search?" if kind == "api" else "/?") + urlencode({"q": question})
            t0 = time.perf_counter()
            try:
                conn.request("GET", path)
                response = conn.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException) as exc:
                status = f"{type(exc).__name__}"
                conn.close()
                conn = http.client.HTTPConnection(host, int(port), timeout=60)
            elapsed = time.perf_counter() - t0
            with lock:
                if status == 200:
                    results[kind].append(elapsed)
                else:
                    results["errors"].append(status)
            i += clients
        conn.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def burst(base_url: str, seconds: float) -> tuple[int, int, bool]:
    """One client asking as fast as it can: (allowed, refused, every refusal had Retry-After)."""
    host, port = base_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    allowed = refused = 0
    retry_after_everywhere = True
    stop_at = time.monotonic() + seconds
    while time.monotonic() < stop_at:
        conn.request("GET", "/api/search?" + urlencode({"q": "salt", "mode": "text", "k": 1}))
        response = conn.getresponse()
        response.read()
        if response.status == 200:
            allowed += 1
        elif response.status == 429:
            refused += 1
            retry_after_everywhere &= int(response.headers.get("Retry-After", "0")) >= 1
    conn.close()
    return allowed, refused, retry_after_everywhere


def steady_searches(base_url: str, asked: list[str], rate: float, seconds: float) -> tuple[list[float], list]:
    """Searches started every 1/rate s whatever the server does (open loop): (timings, errors)."""
    host, port = base_url.removeprefix("http://").split(":")
    timings: list[float] = []
    errors: list = []
    lock = threading.Lock()

    def one(question: str) -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=120)
        t0 = time.perf_counter()
        try:
            conn.request("GET", "/api/search?" + urlencode({"q": question}))
            response = conn.getresponse()
            response.read()
            status = response.status
        except (OSError, http.client.HTTPException) as exc:
            status = type(exc).__name__
        finally:
            conn.close()
        with lock:
            if status == 200:
                timings.append(time.perf_counter() - t0)
            else:
                errors.append(status)

    threads = []
    start = time.monotonic()
    for i in range(int(rate * seconds)):
        time.sleep(max(0.0, start + i / rate - time.monotonic()))
        thread = threading.Thread(target=one, args=(asked[i % len(asked)],))
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join()
    return timings, errors


def hung_answers(base_url: str, clients: int, stop: threading.Event) -> tuple[list[threading.Thread], dict]:
    """`clients` threads asking for answers (each question new) until `stop`; counts statuses."""
    host, port = base_url.removeprefix("http://").split(":")
    statuses: dict = {}
    lock = threading.Lock()

    def client(index: int) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            conn = http.client.HTTPConnection(host, int(port), timeout=120)
            question = f"Why avoid seed oils, asks visitor {index} for the {n}th time?"
            retry_after = 1.0
            try:
                conn.request("GET", "/api/answer?" + urlencode({"q": question}))
                response = conn.getresponse()
                status = response.status
                retry_after = float(response.headers.get("Retry-After") or 1)
            except (OSError, http.client.HTTPException) as exc:
                status = type(exc).__name__
            finally:
                conn.close()
            with lock:
                statuses[status] = statuses.get(status, 0) + 1
            stop.wait(retry_after)  # as the 503 asks

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
    for thread in threads:
        thread.start()
    return threads, statuses


def mixed_run(url: str, asked: list[str], args: argparse.Namespace) -> None:
    model = ChatStandIn()
    model.after_script = HANG
    model.hang_s = 3600
    env = serve_env(
        url,
        OPENAI_API_KEY="sk-bench-not-a-key",
        OPENAI_BASE_URL=model.base_url,
        CHAFFEE_RATE_LIMIT_PER_MINUTE="1000000",
    )
    try:
        with chaffee_serve(env, "--no-access-log") as server:
            load(server.base_url, asked, 1, 2)  # warm up: connections, caches
            plain, plain_errors = steady_searches(server.base_url, asked, args.rate, args.seconds)
            stop = threading.Event()
            threads, statuses = hung_answers(server.base_url, args.hung_clients, stop)
            time.sleep(2)  # the answer pool and its queue fill with calls the model never answers
            mixed, mixed_errors = steady_searches(server.base_url, asked, args.rate, args.seconds)
            stop.set()
            model.release()
            for thread in threads:
                thread.join(timeout=60)
    finally:
        model.close()
    print(
        f"\nsearches at {args.rate:.0f}/s for {args.seconds:.0f} s, plain and while {args.hung_clients} clients "
        f"ask for answers from a model that never answers:"
    )
    for name, timings, errors in (("plain", plain, plain_errors), ("mixed", mixed, mixed_errors)):
        print(
            f"  {name}:  n={len(timings):4d}  p50 {ms(statistics.median(timings))}  "
            f"p95 {ms(percentile(timings, 0.95))}  p99 {ms(percentile(timings, 0.99))}  "
            f"errors {len(errors)}{' ' + str(sorted(set(map(str, errors)))) if errors else ''}"
        )
    by_status = {str(status): count for status, count in sorted(statuses.items(), key=str)}
    print(f"  answer requests during the mixed run, by status: {by_status}")
    print(f"  calls the model received (each hanging): {len(model.requests)}")


def ms(value: float) -> str:
    return f"{value * 1000:.0f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients (default 4)")
    parser.add_argument("--seconds", type=float, default=10, help="how long the clients ask (default 10)")
    parser.add_argument("--library", type=Path, default=SAMPLE, help="library folder (default: the sample)")
    parser.add_argument("--videos", type=int, default=None, help="only the first N videos of the library")
    parser.add_argument("--burst-seconds", type=float, default=5, help="how long the rate-limit burst lasts")
    parser.add_argument(
        "--rate", type=float, default=10, help="searches a second in the mixed run (default 10)"
    )
    parser.add_argument(
        "--hung-clients", type=int, default=48, help="answer clients in the mixed run (default 48)"
    )
    parser.add_argument(
        "--mixed-only", action="store_true", help="run only the mixed run (and its plain run)"
    )
    args = parser.parse_args()

    url = fresh_database()
    try:
        run(url, args)
    finally:
        drop_database(url)


def run(url: str, args: argparse.Namespace) -> None:
    segments = fill(url, args.library, args.videos)
    asked = questions()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} "
        f"at the start; {segments} segments"
    )

    if args.mixed_only:
        mixed_run(url, asked, args)
        return

    baseline = in_process_baseline(url, asked, rounds=60)
    base_p50 = statistics.median(baseline)
    print(f"baseline, in-process search + snippets: p50 {ms(base_p50)}, p95 {ms(percentile(baseline, 0.95))}")

    # The default (one thread per question's embedding) against every core per question.
    for threads in (1, os.cpu_count() or 1):
        env = serve_env(
            url, CHAFFEE_RATE_LIMIT_PER_MINUTE="1000000", CHAFFEE_SERVE_EMBEDDING_THREADS=str(threads)
        )
        with chaffee_serve(env, "--no-access-log") as server:
            load(server.base_url, asked, 1, 2)  # warm up: connections, caches
            results = load(server.base_url, asked, args.clients, args.seconds)
        served = results["api"] + results["page"]
        total = len(served) + len(results["errors"])
        print(
            f"\n{args.clients} clients for {args.seconds:.0f} s, CHAFFEE_SERVE_EMBEDDING_THREADS={threads}: "
            f"{total} requests, {total / args.seconds:.1f}/s"
        )
        for kind in ("api", "page"):
            timings = results[kind]
            if timings:
                p50 = statistics.median(timings)
                print(
                    f"  {'GET /api/search' if kind == 'api' else 'GET /?q=…     '}  n={len(timings):4d}  "
                    f"p50 {ms(p50)} ({p50 / base_p50:.1f}x baseline)  "
                    f"p95 {ms(percentile(timings, 0.95))}  p99 {ms(percentile(timings, 0.99))}"
                )
        errors = results["errors"]
        print(f"  errors: {len(errors)}{' ' + str(sorted(set(map(str, errors)))) if errors else ''}")

    limit = 60
    with chaffee_serve(serve_env(url, CHAFFEE_RATE_LIMIT_PER_MINUTE=str(limit)), "--no-access-log") as server:
        allowed, refused, with_retry_after = burst(server.base_url, args.burst_seconds)
    expected = limit + limit / 60 * args.burst_seconds
    print(
        f"\nrate limit {limit}/min, one client for {args.burst_seconds:.0f} s: {allowed} allowed "
        f"(a full bucket plus refill: about {expected:.0f}), {refused} refused with 429"
        f"{', each with Retry-After' if with_retry_after else ', SOME WITHOUT Retry-After'}"
    )
    mixed_run(url, asked, args)


if __name__ == "__main__":
    main()
