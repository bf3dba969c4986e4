"""Benchmark: `chaffee search` from a cold shell, hybrid against text mode, as a user runs it.

    python bench/bench_cli.py [--runs 5] [--database-url URL]

Each run is a fresh `chaffee search` process (interpreter start, imports, connecting, embedding the
question, the query, printing). Text mode embeds nothing, so it is the baseline: the goal is hybrid
within 1.5× of it. A third figure shows what the question's embedding would cost by torch (the
`torch` backend), the way every search paid before questions were embedded with ONNX Runtime.
The warehouse must hold an ingested library (default: the embedded server's `cond_dev` database
that `bench/eval_conditions.py run` fills, else the default warehouse).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHAFFEE = str(ROOT / ".venv" / "bin" / "chaffee")
QUESTIONS = ("how does light exposure affect sleep", "what does caffeine do to adenosine")


def one_search(env: dict[str, str], question: str, mode: str) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(
        [CHAFFEE, "search", question, "--mode", mode, "-k", "5"], env=env, capture_output=True, text=True
    )
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"chaffee search failed: {done.stdout}{done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="cold searches per mode (default 5)")
    parser.add_argument(
        "--database-url", help="warehouse to search (default: cond_dev on the embedded server)"
    )
    args = parser.parse_args(argv)
    env = dict(os.environ)
    if args.database_url:
        env["DATABASE_URL"] = args.database_url
    elif "DATABASE_URL" not in env:
        sys.path.insert(0, str(ROOT))
        from chaffee_assets.warehouse.server import embedded_server_uri

        env["DATABASE_URL"] = embedded_server_uri("cond_dev")
    kinds = {
        "text": (env, "text"),
        "hybrid": (env, "hybrid"),
        "hybrid_torch_query": ({**env, "CHAFFEE_EMBEDDING_BACKEND": "torch"}, "hybrid"),
    }
    for kind_env, mode in kinds.values():  # warm the page cache and any one-time export
        one_search(kind_env, QUESTIONS[0], mode)
    walls: dict[str, list[float]] = {k: [] for k in kinds}
    cpus: dict[str, list[float]] = {k: [] for k in kinds}
    for i in range(args.runs):  # interleaved, so a busy moment hits every kind alike
        for kind, (kind_env, mode) in kinds.items():
            wall, cpu = one_search(kind_env, QUESTIONS[i % len(QUESTIONS)], mode)
            walls[kind].append(wall)
            cpus[kind].append(cpu)
    report: dict[str, object] = {"runs": args.runs}
    for kind in kinds:
        report[kind] = {
            "wall_s_median": round(statistics.median(walls[kind]), 2),
            "cpu_s_median": round(statistics.median(cpus[kind]), 2),
        }
    text = statistics.median(walls["text"])
    report["hybrid_x_text_wall"] = round(statistics.median(walls["hybrid"]) / text, 2)
    report["hybrid_torch_query_x_text_wall"] = round(statistics.median(walls["hybrid_torch_query"]) / text, 2)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
