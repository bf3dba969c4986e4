"""Measurement: where links open, window start against the precise cue, on condition warehouses.

    python bench/seek_landing.py [--only chapters …] [--modes hybrid vector text]

For each condition warehouse that `bench/eval_conditions.py run` filled (database `cond_<name>`),
asks every question of the condition twice per mode, with links at the window's start (the product
before precise seek) and at the cue the seek chose, and prints Recall@5, Recall@10, MRR@10, the
share of first relevant hits whose link opens inside the answer's range, the median and 90th
percentile distance of that link from the range's start, and the seek's own cost per question
(p50/p95: the round trip reading the hits' words, and the choice; the same round trip also
serves the relevance judgement). Both arms run in the same process on the same
warehouse, so their ratio holds on a loaded machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from eval_conditions import CONDITIONS  # noqa: E402

from chaffee_assets.retrieval.evaluation import load_questions, rank_and_landing, score  # noqa: E402
from chaffee_assets.search import SearchOptions, embedder_for, read_words, search, seek  # noqa: E402
from chaffee_assets.warehouse import connect  # noqa: E402
from chaffee_assets.warehouse.server import embedded_server_uri  # noqa: E402

MODEL = "all-MiniLM-L6-v2"


class _Precomputed:
    def __init__(self, vector):
        self.vector = vector

    def encode_queries(self, texts):
        return [self.vector]


def measure(conn, questions, mode: str, vectors) -> dict[str, dict[str, float]]:
    window_ranks, window_landings, seek_ranks, seek_landings, costs = [], [], [], [], []
    plain = SearchOptions(precise_seek=False)
    for i, question in enumerate(questions):
        embedder = _Precomputed(vectors[i]) if vectors is not None else None
        hits = search(question.question, 10, mode, model=MODEL, options=plain, conn=conn, embedder=embedder)
        rank, landed = rank_and_landing(hits, question)
        window_ranks.append(rank)
        if landed:
            window_landings.append(landed)
        began = time.perf_counter()
        sought = seek(hits, read_words(question.question, hits, model=MODEL, conn=conn))
        costs.append(time.perf_counter() - began)
        rank, landed = rank_and_landing(sought, question)
        seek_ranks.append(rank)
        if landed:
            seek_landings.append(landed)
    ms = np.asarray(costs) * 1000
    return {
        "window_start": score(window_ranks, window_landings),
        "precise_seek": {
            **score(seek_ranks, seek_landings),
            "seek_ms_p50": round(float(np.percentile(ms, 50)), 2),
            "seek_ms_p95": round(float(np.percentile(ms, 95)), 2),
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="conditions (default: every one with a warehouse)")
    parser.add_argument("--modes", nargs="*", default=["hybrid", "vector", "text"])
    args = parser.parse_args(argv)
    report: dict[str, object] = {}
    for condition in CONDITIONS:
        if args.only and condition.name not in args.only:
            continue
        questions = load_questions(condition.questions)
        vectors = embedder_for(MODEL).encode_queries([q.question for q in questions])
        with connect(embedded_server_uri(f"cond_{condition.name}"), autocommit=True) as conn:
            for mode in args.modes:
                report[f"{condition.name}/{mode}"] = result = measure(
                    conn, questions, mode, None if mode == "text" else vectors
                )
                print(json.dumps({f"{condition.name}/{mode}": result}), flush=True)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
