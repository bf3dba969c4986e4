"""Evaluation conditions: the shared eval sets as they are, and re-titled copies that test robustness.

    python bench/eval_conditions.py build [--into DIR]   # write each condition's library folder
    python bench/eval_conditions.py run [--only NAME…]   # chaffee ingest + chaffee eval per condition

The held-out videos the product is judged on are live Q&A events: their titles are alike and say
nothing about any one answer, while other videos' titles name their topic. The two shared sets have
informative titles throughout, so defaults chosen on them learn to trust titles. These conditions
take that trust away:

| condition | library | questions | titles |
|---|---|---|---|
| `dev` | huberman_dev (211) | its 581 | real |
| `chapters` | huberman_chapters (11) | its 377 | real |
| `dev_generic` | huberman_dev | its 581 | every video "Live Q&A \\| <date>", generic description, no tags |
| `dev_shuffled` | huberman_dev | its 581 | each video carries another video's title, description and tags |
| `chapters_generic_in_dev` | huberman_chapters + huberman_dev | chapters' 377 | the 11 episodes generic, the 211 distractors real |

`run` ingests each condition through the product (`chaffee ingest --library`, its own warehouse
database) and scores it with `chaffee eval --json`, exactly as a user would; `bench/retrieval_lab.py`
uses the same titles to compare ranking variants in memory.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EVAL = ROOT.parent / "shared" / "eval"
DEFAULT_INTO = ROOT / ".chaffee" / "conditions"

GENERIC_DESCRIPTION = "Live Q&A: questions from the audience, answered one after another."
SHUFFLE_SEED = 20261201


def generic_title(upload_date: str) -> str:
    day = datetime.strptime(upload_date, "%Y%m%d")
    return f"Live Q&A | {day:%B} {day.day}, {day.year}"


@dataclass(frozen=True)
class Condition:
    name: str
    questions: Path
    # (library folder, how its titles are rewritten: "real" | "generic" | "shuffled")
    parts: tuple[tuple[str, str], ...]


CONDITIONS = (
    Condition("dev", EVAL / "huberman_dev" / "questions.jsonl", (("huberman_dev", "real"),)),
    Condition("chapters", EVAL / "huberman_chapters" / "questions.jsonl", (("huberman_chapters", "real"),)),
    Condition("dev_generic", EVAL / "huberman_dev" / "questions.jsonl", (("huberman_dev", "generic"),)),
    Condition("dev_shuffled", EVAL / "huberman_dev" / "questions.jsonl", (("huberman_dev", "shuffled"),)),
    Condition(
        "chapters_generic_in_dev",
        EVAL / "huberman_chapters" / "questions.jsonl",
        (("huberman_chapters", "generic"), ("huberman_dev", "real")),
    ),
)


def read_infos(library: str) -> dict[str, dict]:
    folder = EVAL / library / "library"
    return {
        p.name[: -len(".info.json")]: json.loads(p.read_text(encoding="utf-8"))
        for p in sorted(folder.glob("*.info.json"))
    }


def retitled(library: str, how: str) -> dict[str, dict]:
    """video id -> {"title", "description", "tags"} as the condition shows them."""
    infos = read_infos(library)
    real = {
        vid: {"title": i["title"], "description": i.get("description") or "", "tags": i.get("tags") or []}
        for vid, i in infos.items()
    }
    if how == "real":
        return real
    if how == "generic":
        return {
            vid: {"title": generic_title(i["upload_date"]), "description": GENERIC_DESCRIPTION, "tags": []}
            for vid, i in infos.items()
        }
    ids = sorted(real)
    donors = ids[:]
    random.Random(SHUFFLE_SEED).shuffle(donors)
    # Rotate any video that drew itself, so every title belongs to another video.
    for i, vid in enumerate(ids):
        if donors[i] == vid:
            j = (i + 1) % len(ids)
            donors[i], donors[j] = donors[j], donors[i]
    return {vid: real[donor] for vid, donor in zip(ids, donors, strict=True)}


def condition_metadata(condition: Condition) -> dict[str, dict]:
    """video id -> shown metadata for every video of the condition (first part wins on a shared id)."""
    shown: dict[str, dict] = {}
    for library, how in condition.parts:
        for vid, meta in retitled(library, how).items():
            shown.setdefault(vid, meta)
    return shown


def build_library(condition: Condition, into: Path) -> Path:
    """A library folder for the condition: rewritten info.json files, captions linked, not copied."""
    folder = into / condition.name
    folder.mkdir(parents=True, exist_ok=True)
    placed: set[str] = set()
    for library, how in condition.parts:
        source = EVAL / library / "library"
        shown = retitled(library, how)
        for vid, info in read_infos(library).items():
            if vid in placed:
                continue  # an episode in both sets keeps the first set's captions
            placed.add(vid)
            info = {**info, **shown[vid], "fulltitle": shown[vid]["title"]}
            (folder / f"{vid}.info.json").write_text(json.dumps(info, ensure_ascii=False), encoding="utf-8")
            for caption in source.glob(f"{glob_escape(vid)}.en.*"):
                link = folder / caption.name
                if link.is_symlink() or link.exists():
                    link.unlink()
                link.symlink_to(caption.resolve())
    return folder


def glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "[]*?" else c for c in text)


def run_condition(condition: Condition, into: Path, chaffee: str) -> dict:
    library = build_library(condition, into)
    env = {**os.environ, "DATABASE_URL": database_url(f"cond_{condition.name}")}
    subprocess.run([chaffee, "db", "upgrade"], env=env, check=True, stdout=subprocess.DEVNULL)
    subprocess.run([chaffee, "ingest", "--library", str(library)], env=env, check=True)
    out = subprocess.run(
        [chaffee, "eval", str(condition.questions), "--json"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout)


def database_url(name: str) -> str:
    sys.path.insert(0, str(ROOT))
    from chaffee_assets.warehouse.server import embedded_server_uri

    return embedded_server_uri(name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("build", "run"))
    parser.add_argument("--into", type=Path, default=DEFAULT_INTO, help="where condition libraries go")
    parser.add_argument("--only", nargs="*", help="conditions to run")
    parser.add_argument("--chaffee", default=str(ROOT / ".venv" / "bin" / "chaffee"))
    args = parser.parse_args(argv)
    chosen = [c for c in CONDITIONS if not args.only or c.name in args.only]
    if args.command == "build":
        for condition in chosen:
            print(build_library(condition, args.into))
        return 0
    results = {}
    for condition in chosen:
        results[condition.name] = run_condition(condition, args.into, args.chaffee)
        print(json.dumps({condition.name: results[condition.name]}), flush=True)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
