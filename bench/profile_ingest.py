"""Profile: where `chaffee ingest --library` spends its time, by stage, from py-spy's samples.

    python bench/profile_ingest.py [--library DIR] [--py-spy PATH] [--rate 50]
    python bench/profile_ingest.py --raw FILE          # summarise an earlier recording

Records the command as a user runs it (a fresh CHAFFEE_HOME, its own embedded PostgreSQL, which is
started and migrated before the recording) with `py-spy record --format raw`, then sorts every
sampled stack into one stage: the first stage in `STAGES` that one of its frames matches. py-spy is
not a dependency of the project: `pip install py-spy` (it reads the process from outside, so the
command runs at nearly full speed).

What the figures are: seconds of samples of the command's Python threads while they were not idle,
which is wall time, not CPU. Work in native code that runs on several cores at once (the model's
inference on OpenVINO or ONNX Runtime) costs more CPU than its share here, and the database's CPU is
not here at all: `bench/bench_ingest.py` measures both (the command's CPU and the server's, split by
what spent it).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from bench_support import EVAL  # noqa: E402

CHAFFEE = ROOT / ".venv" / "bin" / "chaffee"
PYTHON = ROOT / ".venv" / "bin" / "python"

# (stage, pattern on a frame "function (file:line)"), in order of precedence: a stack belongs to
# the first stage one of its frames matches.
STAGES: list[tuple[str, str]] = [
    # Before inference: NNCF runs the model too, to calibrate.
    ("model: making the int8 graph (first use)", r"^ensure_openvino_int8 "),
    (
        "model: inference",
        r"^(InferRequest\.infer|InferenceSession\.run|OnnxSentenceEncoder\._run|"
        r"OpenVinoSentenceEncoder\._run|SentenceTransformer\.forward) ",
    ),
    ("model: tokenising for the model", r"^OnnxSentenceEncoder\.encode "),
    ("model: export to ONNX (first use)", r"^export_sentence_transformer "),
    ("model: loading torch and sentence-transformers", r"^Embedder\._load_torch "),
    ("model: starting OpenVINO / ONNX Runtime", r"^(OpenVinoSentenceEncoder|OnnxSentenceEncoder)\.__init__ "),
    ("writes: vectors (COPY)", r"^write_embeddings "),
    ("writes: segments and postings", r"^replace_segments "),
    ("cutting segments (tokenizer counts)", r"^(segment_videos|segment_cues) "),
    ("transcripts: reading captions", r"^transcripts \(chaffee_assets/"),
    ("videos: library listing", r"^videos \(chaffee_assets/"),
    ("asset checks and golden queries", r"\(chaffee_assets/defs/checks\.py"),
    ("Dagster: creating runs (planned events)", r"^RunMethods\.create_run_for_job "),
    ("Dagster: writing events", r"^(EventMethods\.handle_new_event|EventMethods\.report_dagster_event) "),
    (
        "Dagster: resources and run set-up",
        r"^(resource_initialization_event_generator|execution_context_event_generator) ",
    ),
    ("Dagster: executing steps (the rest)", r"^(ExecuteRunWithPlanIterable\.__iter__|execute_run_iterator) "),
    ("loading the code location", r"^(_code_location|_IngestJob\.__init__) "),
    ("imports at start-up", r"^(_find_and_load|_call_with_frames_removed) "),
]


def stage_of(thread: str, frames: list[str]) -> str:
    for stage, pattern in STAGES:
        if any(re.search(pattern, frame) for frame in frames):
            return stage
    # py-spy counts a pool's worker blocked on its queue as active: mostly waiting, not work.
    return "other" if "MainThread" in thread else "other threads (mostly waiting)"


def summarise(raw: Path, rate: int) -> list[tuple[str, float, float]]:
    """(stage, seconds sampled, share) from a py-spy raw file, largest first."""
    by_stage: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        thread, *frames = stack.split(";")
        by_stage[stage_of(thread, frames)] += int(count)
    total = sum(by_stage.values()) or 1
    return [(stage, n / rate, n / total) for stage, n in by_stage.most_common()]


def record(library: Path, py_spy: str, rate: int, out: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="profile-ingest-") as home:
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DAGSTER_PG_URL")}
        env.update(CHAFFEE_HOME=home, HF_HUB_OFFLINE="1")
        subprocess.run([str(CHAFFEE), "db", "upgrade"], env=env, check=True, stdout=subprocess.DEVNULL)
        try:
            subprocess.run(
                [py_spy, "record", "--rate", str(rate), "--format", "raw", "--threads", "--output", str(out),
                 "--", str(PYTHON), str(CHAFFEE), "ingest", "--library", str(library)],
                env=env, check=True, stdout=subprocess.DEVNULL,
            )  # fmt: skip
        finally:
            subprocess.run([str(CHAFFEE), "db", "stop"], env=env, stdout=subprocess.DEVNULL)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--library", type=Path, default=EVAL / "huberman_dev" / "library")
    parser.add_argument("--py-spy", default=shutil.which("py-spy") or "py-spy")
    parser.add_argument("--rate", type=int, default=50, help="samples per second")
    parser.add_argument("--raw", type=Path, help="summarise this recording instead of making one")
    args = parser.parse_args(argv)
    raw = args.raw
    if raw is None:
        raw = Path(tempfile.mkdtemp(prefix="profile-ingest-")) / "ingest.raw"
        record(args.library, args.py_spy, args.rate, raw)
        print(f"recording: {raw}")
    rows = summarise(raw, args.rate)
    total = sum(seconds for _, seconds, _ in rows)
    print(f"{'stage':<48} {'seconds':>8} {'share':>6}")
    for stage, seconds, share in rows:
        print(f"{stage:<48} {seconds:8.1f} {share:6.1%}")
    print(f"{'all samples':<48} {total:8.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
