"""Measurement: where the default model's relevance floor sits (`weak` hits, "nothing relevant").

    python bench/relevance_floor.py [--database-url URL …]

On warehouses holding the evaluation libraries (default: the `cond_dev` and `cond_chapters`
databases that `bench/eval_conditions.py run` fills), asks every real question and a set of
queries the library cannot answer (off-topic questions, nonsense, stop words), and prints the
distribution of the best hit's cosine similarity for each. The floor (`min_similarity` of
all-MiniLM-L6-v2 in `retrieval/models.py`, 0.35) must sit below nearly every real question's best
hit and above most unanswerable ones.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chaffee_assets.retrieval.evaluation import load_questions  # noqa: E402
from chaffee_assets.search import search  # noqa: E402
from chaffee_assets.warehouse import connect  # noqa: E402
from chaffee_assets.warehouse.server import embedded_server_uri  # noqa: E402

EVAL = ROOT.parent / "shared" / "eval"
UNANSWERABLE = [
    "how do I change a flat tire on a bicycle",
    "best pizza restaurants in naples",
    "who won the world cup in 1998",
    "how to file my taxes online",
    "what is the capital of australia",
    "python list comprehension syntax",
    "how to knit a scarf for beginners",
    "lyrics of bohemian rhapsody",
    "cheap flights to tokyo in march",
    "how do I reset my router password",
    "the and of to a",
    "🥩🥩🥩",
    "asdf qwer zxcv",
    "lorem ipsum dolor sit amet",
    "????",
    "hello",
]


def best_similarity(conn, query: str) -> float | None:
    hits = search(query, k=1, mode="vector", conn=conn)
    return hits[0].similarity if hits else None


def percentiles(values: list[float]) -> dict[str, float]:
    arr = np.asarray([v for v in values if v is not None])
    return {f"p{p}": round(float(np.percentile(arr, p)), 3) for p in (1, 5, 50, 95, 99)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", nargs="*", help="warehouses (default cond_dev, cond_chapters)")
    args = parser.parse_args(argv)
    urls = args.database_url or [embedded_server_uri("cond_dev"), embedded_server_uri("cond_chapters")]
    sets = {"cond_dev": "huberman_dev", "cond_chapters": "huberman_chapters"}
    report: dict[str, object] = {}
    for url in urls:
        name = next((db for db in sets if f"/{db}?" in url or url.endswith(f"/{db}")), None)
        with connect(url) as conn:
            if name:
                questions = load_questions(EVAL / sets[name] / "questions.jsonl")
                real = [best_similarity(conn, q.question) for q in questions]
                report[f"{sets[name]}_questions_best_hit"] = percentiles(real)
            junk = {q: best_similarity(conn, q) for q in UNANSWERABLE}
            report[f"{name or url}_unanswerable_best_hit"] = {q: round(s, 3) for q, s in junk.items() if s}
    print(json.dumps(report, indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
