"""Benchmark: what the shared rate limit adds to a request, against the per-process bucket.

    python bench/bench_rate_limit.py [--requests 2000] [--clients 50] [--database-url URL]

Each request's limiter call is timed as the server makes it (`take(client, 1)`), for the in-memory
token bucket (the baseline) and for the bucket in the warehouse's `web_rate_limit` table, on a fresh
database of the embedded server unless a URL is given. Clients are spread round-robin, so rows are
both created and updated; the limit is high enough that nothing is refused. Prints p50/p95/p99 in
microseconds and the difference at p95.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid

import psycopg
from psycopg import sql

from chaffee_assets.warehouse.migrate import upgrade
from chaffee_assets.warehouse.server import embedded_server_uri
from chaffee_assets.web.protection import RateLimiter, SharedRateLimiter


def timed(take, requests: int, clients: int) -> list[float]:
    spent = []
    for i in range(requests):
        client = f"198.51.100.{i % clients}"
        t0 = time.perf_counter()
        take(client, 1)
        spent.append((time.perf_counter() - t0) * 1e6)
    return spent


def percentiles(values: list[float]) -> tuple[float, float, float]:
    cuts = statistics.quantiles(values, n=100)
    return cuts[49], cuts[94], cuts[98]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    url = args.database_url
    if url is None:
        admin = embedded_server_uri("postgres")
        name = f"bench_limit_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        url = admin.replace("/postgres?", f"/{name}?", 1)
    upgrade(url)
    limit = 10 * args.requests
    memory = RateLimiter(limit)
    shared = SharedRateLimiter(limit, url)
    shared.open()
    try:
        timed(shared.take, 200, args.clients)  # connections opened, plans cached
        rows = {}
        for _ in range(2):  # interleaved, so both see the same machine load
            rows.setdefault("in memory", []).extend(timed(memory.take, args.requests, args.clients))
            rows.setdefault("warehouse", []).extend(timed(shared.take, args.requests, args.clients))
    finally:
        shared.close()
    for label, values in rows.items():
        p50, p95, p99 = percentiles(values)
        print(f"{label:10}  p50 {p50:8.1f} us  p95 {p95:8.1f} us  p99 {p99:8.1f} us  ({len(values)} calls)")
    added = percentiles(rows["warehouse"])[1] - percentiles(rows["in memory"])[1]
    print(f"added at p95: {added / 1000:.2f} ms per request")


if __name__ == "__main__":
    main()
