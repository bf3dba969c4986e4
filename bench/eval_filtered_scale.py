"""Retrieval under date filters at channel-history scale: the dev questions, their answers among
200 000 segments.

    python bench/eval_filtered_scale.py [--mode hybrid|text] [--baseline 0009|FILE.sql]
                                        [--target 200000] [--questions N] [--json FILE]

At the dev library's own size (5 792 segments) the BM25 walk's posting budget never binds, so that
library cannot tell whether a search that reads fewer postings loses answers. Here the library is
the dev library ingested by the product (`chaffee ingest --library` into its own CHAFFEE_HOME,
`.chaffee/filtered_scale`) plus distractors recombined by `scale_corpus.py` from both evaluation
libraries' speech until the library holds `--target` segments. Every block that overlaps a dev
question's answer is left out of the distractors, so an answer's words exist only in its own video
and every question keeps its ground truth. Distractors are published across 2015–2026, the dev
videos in 2021–2024.

Each question is asked three ways: unfiltered, filtered to its answer's publish year (about 18 000
segments, the exact vector path) and from 2018 on (about 150 000, the HNSW path). Each is scored
(Recall@5, Recall@10, MRR@10) and timed (p50/p95 ms) for two functions in the same run, question
by question in turn, after an untimed pass under the same filter: the product's `search_segments`,
and an earlier one (`--baseline`): the one a numbered migration defined, by default the last of them,
or a file holding an earlier text of `definitions/search_segments.sql` (for example from `git show
REV:chaffee_assets/warehouse/definitions/search_segments.sql`). Hybrid mode by default, the product's; `--mode text` asks BM25 alone. The build is kept;
later runs only evaluate.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOME = ROOT / ".chaffee" / "filtered_scale"
MODEL = "all-MiniLM-L6-v2"
WIDE_FROM = date(2018, 1, 1)

# This process and the ingest it starts share one CHAFFEE_HOME and so one embedded server; the
# bench's own scratch databases and the user's warehouse stay untouched.
os.environ["CHAFFEE_HOME"] = str(HOME)
os.environ.pop("DATABASE_URL", None)

sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_query import _Fixed, pct  # noqa: E402
from bench_support import EVAL, CachedEmbedder  # noqa: E402
from scale_corpus import load_through_product, source_blocks, synthetic_videos  # noqa: E402

import chaffee_assets.search as product_search  # noqa: E402
from chaffee_assets.retrieval.evaluation import first_relevant_rank, load_questions, score  # noqa: E402
from chaffee_assets.warehouse import connect  # noqa: E402
from chaffee_assets.warehouse.migrate import MIGRATIONS_DIR, available_migrations, upgrade  # noqa: E402
from chaffee_assets.warehouse.server import warehouse_url  # noqa: E402

DEV_LIBRARY = EVAL / "huberman_dev" / "library"
DEV_QUESTIONS = EVAL / "huberman_dev" / "questions.jsonl"


def build(url: str, target: int) -> dict[str, float]:
    """Ingest the dev library through the product, then add distractors up to `target` segments.

    The ingest runs again until every dev video has its segments (it is idempotent, so an
    interrupted one resumes); the distractors are written once, and an interrupted write of them
    is refused rather than topped up."""
    figures: dict[str, float] = {}
    dev_videos = len(list(DEV_LIBRARY.glob("*.info.json")))
    with connect(url, autocommit=True) as conn:
        ingested = conn.execute(
            "SELECT count(DISTINCT video_id) FROM segments WHERE video_id NOT LIKE 'scale%'"
        ).fetchone()[0]
    if ingested < dev_videos:
        t0 = time.perf_counter()
        subprocess.run(
            [str(ROOT / ".venv" / "bin" / "chaffee"), "ingest", "--library", str(DEV_LIBRARY)],
            check=True,
            env=os.environ,
        )
        figures["ingest_s"] = round(time.perf_counter() - t0, 1)
    with connect(url, autocommit=True) as conn:
        have = conn.execute("SELECT count(*) FROM segments").fetchone()[0]
        distractors = conn.execute("SELECT count(*) FROM videos WHERE video_id LIKE 'scale%'").fetchone()[0]
    if distractors and have < target:
        raise SystemExit(
            f"the distractors in {HOME} stop at {have} segments, short of {target}: "
            "delete that folder to build again"
        )
    if distractors == 0 and have < target:
        answers: dict[str, list[tuple[float, float]]] = defaultdict(list)
        for q in load_questions(DEV_QUESTIONS):
            answers[q.video_id].append((q.start_s, q.end_s))
        embedder = CachedEmbedder(MODEL)
        sources = [s for s in source_blocks(embedder, leave_out=answers) if s]
        videos = list(synthetic_videos(sources, target - have))
        figures.update(load_through_product(url, videos, MODEL, embedder.dimension))
    return figures


def baseline_source(baseline: str | None) -> Path:
    """The file whose `search_segments` is the baseline: a numbered migration (`baseline` "0008";
    by default the last one that defines the function) or a path to an earlier definition."""
    if baseline and Path(baseline).is_file():
        return Path(baseline)
    defining = [m for m in available_migrations() if "FUNCTION search_segments(" in m.sql]
    chosen = defining[-1:] if baseline is None else [m for m in defining if f"{m.version:04d}" == baseline]
    if not chosen:
        raise SystemExit(
            f"{baseline} is neither a file nor a migration that defines search_segments in {MIGRATIONS_DIR}"
        )
    return chosen[0].path


def install_baseline(url: str, source_file: Path) -> str:
    """The file's search function, renamed, beside the product's; returns its name."""
    name = "search_segments_baseline"
    source = source_file.read_text()
    function = source[source.index("CREATE OR REPLACE FUNCTION search_segments(") :]
    function = function.replace("FUNCTION search_segments(", f"FUNCTION {name}(").replace(
        "search_segments.model", f"{name}.model"
    )
    with connect(url, autocommit=True) as conn:
        conn.execute(function)
    return name


def ask_both(
    conn, functions: dict[str, str], mode: str, questions, vectors, filters
) -> dict[str, tuple[list[int | None], list[float], list[list[int]]]]:
    """Every question through both functions (label -> SQL function), the product's defaults
    otherwise: ranks, ms and hit ids for each. The two alternate question by question, each going
    first in turn, so that the machine's drift and what one leaves in the caches weigh on both
    alike."""
    calls = {
        label: product_search._SEARCH_SQL.replace("FROM search_segments(", f"FROM {function}(")
        for label, function in functions.items()
    }
    assert len(set(calls.values())) == len(calls)
    out = {label: ([], [], []) for label in functions}
    saved = product_search._SEARCH_SQL
    try:
        for n, (q, v) in enumerate(zip(questions, vectors, strict=True)):
            published_from, published_to = filters(q)
            for label in list(functions)[:: 1 if n % 2 == 0 else -1]:
                product_search._SEARCH_SQL = calls[label]
                t0 = time.perf_counter()
                hits = product_search.search(
                    q.question,
                    10,
                    mode,
                    conn=conn,
                    embedder=_Fixed(v),
                    reranker="",
                    published_from=published_from,
                    published_to=published_to,
                )
                ranks, latencies, lists = out[label]
                latencies.append(1000 * (time.perf_counter() - t0))
                ranks.append(first_relevant_rank(hits, q))
                lists.append([h.segment_id for h in hits])
    finally:
        product_search._SEARCH_SQL = saved
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--target", type=int, default=200_000, help="segments in the library (default 200000)"
    )
    parser.add_argument("--questions", type=int, default=0, help="ask only the first N dev questions")
    parser.add_argument(
        "--mode", choices=("hybrid", "text"), default="hybrid", help="search mode (default hybrid)"
    )
    parser.add_argument(
        "--baseline",
        help="the baseline's search_segments: a migration number (default: the last that defines it) or a .sql file",
    )
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args(argv)

    url = warehouse_url()
    upgrade(url)
    report: dict = {"build": build(url, args.target)}
    source = baseline_source(args.baseline)
    baseline = f"baseline ({source.stem})"
    functions = {baseline: install_baseline(url, source), "product": "search_segments"}
    report["mode"] = args.mode
    questions = load_questions(DEV_QUESTIONS)
    if args.questions:
        questions = questions[: args.questions]
    vectors = CachedEmbedder(MODEL).encode_queries([q.question for q in questions])

    with connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        published = dict(conn.execute("SELECT video_id, partition_date FROM videos").fetchall())
        report["library"] = {
            "segments": conn.execute("SELECT count(*) FROM segments").fetchone()[0],
            "videos": len(published),
            "dev_videos": sum(1 for v in published if not v.startswith("scale")),
        }
        filters = {
            "unfiltered": lambda q: (None, None),
            "answer's year": lambda q: (
                date(published[q.video_id].year, 1, 1),
                date(published[q.video_id].year, 12, 31),
            ),
            "from 2018 on": lambda q: (WIDE_FROM, None),
        }
        report["filters"] = {}
        for name, bounds in filters.items():
            # An untimed pass first reads what these searches touch into the buffers, as a serving
            # database holds its working set; timed cold, right after the server started, the
            # first filter's p95 measured 258-347 ms against 41 warm.
            ask_both(conn, functions, args.mode, questions, vectors, bounds)
            answers = ask_both(conn, functions, args.mode, questions, vectors, bounds)
            row = {
                label: {**score(ranks), "p50_ms": pct(latencies, 50), "p95_ms": pct(latencies, 95)}
                for label, (ranks, latencies, _) in answers.items()
            }
            row["lists_changed"] = sum(
                1 for a, b in zip(answers[baseline][2], answers["product"][2], strict=True) if a != b
            )
            # A question's first relevant rank, None (not in the top 10) counted as 11.
            before, after = ([r or 11 for r in answers[label][0]] for label in functions)
            row["answer_moved_up"] = sum(1 for b, a in zip(before, after, strict=True) if a < b)
            row["answer_moved_down"] = sum(1 for b, a in zip(before, after, strict=True) if a > b)
            report["filters"][name] = row
            print(name, json.dumps(row), flush=True)

    print(
        f"\n{report['library']['segments']} segments ({report['library']['dev_videos']} dev videos), "
        f"{len(questions)} dev questions, {args.mode}, p50/p95 ms\n"
    )
    print("| filter | function | Recall@5 | Recall@10 | MRR@10 | p50 / p95 ms |")
    print("|---|---|---|---|---|---|")
    for name, row in report["filters"].items():
        for label in functions:
            m = row[label]
            print(
                f"| {name} | {label} | {m['recall@5']:.4f} | {m['recall@10']:.4f} | {m['mrr@10']:.4f} "
                f"| {m['p50_ms']} / {m['p95_ms']} |"
            )
        print(
            f"| {name} | lists changed | {row['lists_changed']} of {len(questions)}; the answer moved up in "
            f"{row['answer_moved_up']}, down in {row['answer_moved_down']} | | | |"
        )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
