"""Measurement: the "nothing relevant" judgement's two error rates, cosine alone against cosine + words.

    python bench/relevance_floor.py [--database-url URL …] [--grid]
    python bench/relevance_floor.py --database-url URL --questions bench/data/sample_short_questions.txt

On warehouses holding the evaluation libraries (default: the `cond_dev` and `cond_chapters`
databases that `bench/eval_conditions.py run` fills), asks every real question (each has an answer
in the library) and every query of `bench/data/unanswerable_questions.txt` (other topics,
nonsense, other languages: none has one), 10 hybrid hits each, and counts:

- answerable questions judged "nothing relevant" (every hit weak): the false refusals;
- unanswerable queries judged related (some hit not weak): the false answers;

under the cosine floor alone (the judgement before) and under `retrieval/relevance.py`'s rule (a
window that says most of the question's word weight is related a little below the floor).
`--grid` also prints both rates for other values of the rule's two constants.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chaffee_assets.retrieval import relevance  # noqa: E402
from chaffee_assets.retrieval.evaluation import load_questions  # noqa: E402
from chaffee_assets.search import configured_model, embedder_for, search  # noqa: E402
from chaffee_assets.warehouse import connect  # noqa: E402
from chaffee_assets.warehouse.server import embedded_server_uri  # noqa: E402

EVAL = ROOT.parent / "shared" / "eval"
UNANSWERABLE_FILE = ROOT / "bench" / "data" / "unanswerable_questions.txt"
SETS = {"cond_dev": "huberman_dev", "cond_chapters": "huberman_chapters"}


def read_lines(path: Path) -> list[str]:
    """A text file's queries, one a line, "#" lines being comments."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def unanswerable() -> list[str]:
    return read_lines(UNANSWERABLE_FILE)


def hit_facts(conn, queries: list[str], model: str) -> list[list[tuple[float, float | None]]]:
    """Per query, (cosine, matched word share) of each of its 10 hybrid hits."""
    vectors = embedder_for(model).encode_queries(queries)

    class _Precomputed:
        def __init__(self, vector):
            self.vector = vector

        def encode_queries(self, texts):
            return [self.vector]

    facts = []
    for query, vector in zip(queries, vectors, strict=True):
        hits = search(query, 10, "hybrid", model=model, conn=conn, embedder=_Precomputed(vector))
        facts.append([(hit.similarity, hit.matched_share) for hit in hits])
    return facts


def related(facts, floor: float, share: float | None, margin: float) -> bool:
    """Some hit is not weak under a floor and (unless `share` is None) the words rule."""
    for similarity, said in facts:
        if similarity >= floor:
            return True
        if share is not None and said is not None and said >= share and similarity >= floor - margin:
            return True
    return False


def rates(answerable, junk, floor, share, margin) -> dict[str, object]:
    refused = sum(not related(f, floor, share, margin) for f in answerable)
    answered = sum(related(f, floor, share, margin) for f in junk)
    return {
        "false_nothing": f"{refused}/{len(answerable)} = {refused / max(len(answerable), 1):.4f}",
        "false_related": f"{answered}/{len(junk)} = {answered / max(len(junk), 1):.4f}",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", nargs="*", help="warehouses (default cond_dev, cond_chapters)")
    parser.add_argument("--model", default=None, help="embedding model (default the configured one)")
    parser.add_argument(
        "--questions",
        type=Path,
        help="answerable questions (JSON lines, or .txt one a line) for a warehouse not named cond_dev/cond_chapters",
    )
    parser.add_argument("--grid", action="store_true", help="also print other values of the rule's constants")
    args = parser.parse_args(argv)
    model = args.model or configured_model()
    urls = args.database_url or [embedded_server_uri(name) for name in SETS]
    junk_queries = unanswerable()
    answerable_facts, junk_facts, floor = [], [], None
    report: dict[str, object] = {"model": model}
    for url in urls:
        name = next((db for db in SETS if f"/{db}?" in url or url.endswith(f"/{db}")), None)
        with connect(url) as conn:
            floor = conn.execute(
                "SELECT min_similarity FROM embedding_models WHERE lower(model) = lower(%s)",
                (model.rsplit("/", 1)[-1],),
            ).fetchone()[0]
            source = EVAL / SETS[name] / "questions.jsonl" if name else args.questions
            if source:
                questions = (
                    read_lines(source)
                    if source.suffix == ".txt"
                    else [q.question for q in load_questions(source)]
                )
                answerable_facts += hit_facts(conn, questions, model)
            junk = hit_facts(conn, junk_queries, model)
            junk_facts += junk
            report[f"{name or url}: unanswerable related by cosine"] = [
                q for q, f in zip(junk_queries, junk, strict=True) if related(f, floor, None, 0)
            ]
    if floor is None:
        print(json.dumps({"model": model, "error": "the model has no measured floor: nothing is judged"}))
        return 0
    report["floor"] = floor
    report["cosine alone"] = rates(answerable_facts, junk_facts, floor, None, 0)
    report[f"cosine + words (share {relevance.WORDS_SHARE}, margin {relevance.WORDS_MARGIN})"] = rates(
        answerable_facts, junk_facts, floor, relevance.WORDS_SHARE, relevance.WORDS_MARGIN
    )
    if args.grid:
        for share in (0.4, 0.5, 0.6, 0.7, 0.8):
            for margin in (0.05, 0.1, 0.15, 0.2):
                report[f"grid share {share} margin {margin}"] = rates(
                    answerable_facts, junk_facts, floor, share, margin
                )
    print(json.dumps(report, indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
