"""`chaffee eval`: score search on questions whose answers are known (Recall@5, Recall@10, MRR@10)."""

from __future__ import annotations

import argparse
import json
import sys

from chaffee_assets.search import MODES


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="score search against a questions file",
        description="Run every question of a JSON-lines file through search and report Recall@5, Recall@10 "
        'and MRR@10 per mode. Each line: {"question", "video_id", "start_s", "end_s"}; a hit is relevant '
        "when it comes from that video and its window overlaps [start_s, end_s]; for the first relevant hit it "
        "also reports how often its link opens inside that range and how far from its start. It searches what "
        "the warehouse holds now: ingest and embed the questions' videos first.",
    )
    parser.add_argument("questions", metavar="QUESTIONS.jsonl", help="the questions file")
    parser.add_argument(
        "--mode",
        choices=(*MODES, "all"),
        default="all",
        help="the ranking(s) to score (default all three)",
    )
    parser.add_argument(
        "--model",
        default=None,
        help="embedding model whose vectors to search (name or path; default $CHAFFEE_EMBEDDING_MODEL, "
        "else all-MiniLM-L6-v2)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object {mode: {metric: value}}")
    parser.set_defaults(handler=run)


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def evaluate_modes(conn, questions, modes, *, model: str, options=None) -> dict[str, dict[str, float]]:
    """Metrics per mode. Each question is embedded once and reused by every mode."""
    from chaffee_assets.retrieval.evaluation import rank_and_landing, score
    from chaffee_assets.search import embedder_for, search

    vectors = None
    if any(mode != "text" for mode in modes):
        vectors = embedder_for(model).encode_queries([q.question for q in questions])

    class _Precomputed:
        def __init__(self, vector):
            self.vector = vector

        def encode_queries(self, texts):
            return [self.vector]

    results: dict[str, dict[str, float]] = {}
    for mode in modes:
        ranks, landings = [], []
        for i, question in enumerate(questions):
            embedder = _Precomputed(vectors[i]) if vectors is not None else None
            hits = search(
                question.question, 10, mode, model=model, options=options, conn=conn, embedder=embedder
            )
            rank, landed = rank_and_landing(hits, question)
            ranks.append(rank)
            if landed is not None:
                landings.append(landed)
        results[mode] = score(ranks, landings)
    return results


def run(args: argparse.Namespace) -> int:
    import psycopg

    from chaffee_assets.retrieval.embedder import EmbeddingModelError
    from chaffee_assets.retrieval.evaluation import QuestionsError, load_questions
    from chaffee_assets.search import configured_model
    from chaffee_assets.warehouse import WarehouseError, connect
    from chaffee_assets.warehouse.migrate import ensure_schema

    modes = MODES if args.mode == "all" else (args.mode,)
    model = args.model or configured_model()
    try:
        questions = load_questions(args.questions)
        url = ensure_schema()
        with connect(url, autocommit=True) as conn:
            results = evaluate_modes(conn, questions, modes, model=model)
    except (QuestionsError, WarehouseError, EmbeddingModelError, ValueError) as exc:
        return _fail(str(exc))
    except psycopg.Error as exc:
        from chaffee_assets.cli.search_cmd import database_problem

        return _fail(database_problem(exc, model))
    if args.json:
        print(json.dumps(results))
        return 0
    print(f"{len(questions)} questions from {args.questions}")
    print(
        f"{'mode':8s} {'Recall@5':>9s} {'Recall@10':>10s} {'MRR@10':>8s} {'link inside':>12s} {'from start':>11s}"
    )
    for mode, m in results.items():
        inside = f"{m['seek_inside']:12.3f}" if "seek_inside" in m else f"{'-':>12s}"
        distance = f"{m['seek_distance_median_s']:9.0f} s" if "seek_distance_median_s" in m else f"{'-':>11s}"
        print(f"{mode:8s} {m['recall@5']:9.3f} {m['recall@10']:10.3f} {m['mrr@10']:8.3f} {inside} {distance}")
    return 0
