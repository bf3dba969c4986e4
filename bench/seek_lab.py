"""Lab: which rule places a hit's link best, every rule over the same searches on condition warehouses.

    python bench/seek_lab.py [--only chapters dev …] [--modes hybrid vector text]

Searches every question of each condition once per mode (window-start links, `precise_seek` off),
reads the hits' words once, caches both under `.chaffee/seek_lab/`, then places the links by each
rule (the chosen `SeekRule`, each of its knobs varied alone, and the rule before) and prints,
per condition, mode and rule, the share of first relevant hits whose link opens inside the answer's
range and the median distance from its start. Ranking is untouched, so Recall and MRR are the same
for every rule. `bench/seek_landing.py` measures the chosen rule end to end, with its cost.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from eval_conditions import CONDITIONS  # noqa: E402
from seek_landing import MODEL, _Precomputed  # noqa: E402

from chaffee_assets.retrieval.evaluation import load_questions, rank_and_landing, score  # noqa: E402
from chaffee_assets.retrieval.seek import SeekRule  # noqa: E402
from chaffee_assets.search import SearchOptions, embedder_for, read_words, search, seek  # noqa: E402
from chaffee_assets.warehouse import connect  # noqa: E402
from chaffee_assets.warehouse.server import embedded_server_uri  # noqa: E402

CACHE = ROOT / ".chaffee" / "seek_lab"
CHOSEN = SeekRule()
# Each knob varied alone from the chosen rule; the last row is the rule before this lab (15 s
# stretches, 20-word / 2 s step-back, every window's words placed by their share of its span).
RULES = {
    "chosen": CHOSEN,
    **{f"span {s:g} s": replace(CHOSEN, span_s=s) for s in (8.0, 10.0, 15.0, 20.0, 30.0)},
    **{f"lead {x:g}": replace(CHOSEN, lead=x) for x in (0.8, 0.6, 0.4)},
    **{f"margin {x:g}": replace(CHOSEN, margin=x) for x in (0.25, 0.5, 1.0)},
    "no step-back": replace(CHOSEN, sentence_reach_words=0, lead_in_s=0.0),
    "step-back 20 words / 2 s": replace(CHOSEN, sentence_reach_words=20, lead_in_s=2.0),
    "paragraph-timed windows placed too": replace(CHOSEN, word_timed_window_s=float("inf")),
    "before": SeekRule(span_s=15.0, sentence_reach_words=20, lead_in_s=2.0, word_timed_window_s=float("inf")),
}


def searched(condition, mode: str) -> list:
    """[(question, hits, words)] for the condition and mode, from the cache when there."""
    cached = CACHE / f"{condition.name}-{mode}.pickle"
    if cached.exists():
        return pickle.loads(cached.read_bytes())
    questions = load_questions(condition.questions)
    vectors = None if mode == "text" else embedder_for(MODEL).encode_queries([q.question for q in questions])
    plain = SearchOptions(precise_seek=False)
    rows = []
    with connect(embedded_server_uri(f"cond_{condition.name}"), autocommit=True) as conn:
        for i, question in enumerate(questions):
            embedder = None if vectors is None else _Precomputed(vectors[i])
            hits = search(
                question.question, 10, mode, model=MODEL, options=plain, conn=conn, embedder=embedder
            )
            rows.append((question, hits, read_words(question.question, hits, model=MODEL, conn=conn)))
    CACHE.mkdir(parents=True, exist_ok=True)
    cached.write_bytes(pickle.dumps(rows))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*")
    parser.add_argument("--modes", nargs="*", default=["hybrid", "vector", "text"])
    args = parser.parse_args(argv)
    report: dict[str, dict] = {}
    for condition in CONDITIONS:
        if args.only and condition.name not in args.only:
            continue
        for mode in args.modes:
            rows = searched(condition, mode)
            base = [rank_and_landing(hits, q) for q, hits, _ in rows]
            line = {"window_start": score([r for r, _ in base], [landed for _, landed in base if landed])}
            for name, rule in RULES.items():
                moved = [rank_and_landing(seek(hits, words, rule), q) for q, hits, words in rows]
                line[name] = score([r for r, _ in moved], [x for _, x in moved if x])
            report[f"{condition.name}/{mode}"] = line
            print(f"## {condition.name}/{mode}  recall@5 {line['window_start']['recall@5']}")
            for rule, metrics in line.items():
                print(
                    f"  {rule:36s} inside {metrics['seek_inside']:.3f}  "
                    f"median {metrics['seek_distance_median_s']:6.1f} s  p90 {metrics['seek_distance_p90_s']:6.1f} s"
                )
            sys.stdout.flush()
    (CACHE / "report.json").write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
