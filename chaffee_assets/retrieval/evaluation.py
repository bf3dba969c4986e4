"""Retrieval metrics for timestamped questions: relevance by overlap, Recall@k and MRR@k (pure)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Question:
    """A question and where its answer is: a video and a closed time range in seconds."""

    question: str
    video_id: str
    start_s: float
    end_s: float


class TimedHit(Protocol):
    video_id: str
    start_s: float
    end_s: float


class QuestionsError(ValueError):
    """A questions file that cannot be read; the message names the file and line."""


def load_questions(path: str | Path) -> list[Question]:
    """Read a JSON-lines file of {"question", "video_id", "start_s", "end_s"} objects."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise QuestionsError(f"cannot read questions file {path}: {exc.strerror or exc}") from exc
    questions: list[Question] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            q = Question(
                question=str(obj["question"]),
                video_id=str(obj["video_id"]),
                start_s=float(obj["start_s"]),
                end_s=float(obj["end_s"]),
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise QuestionsError(
                f"{path}:{number}: expected an object with question, video_id, start_s, end_s ({exc})"
            ) from exc
        if q.end_s < q.start_s:
            raise QuestionsError(f"{path}:{number}: end_s {q.end_s} is before start_s {q.start_s}")
        questions.append(q)
    if not questions:
        raise QuestionsError(f"{path} holds no questions")
    return questions


def window(hit: TimedHit) -> tuple[float, float]:
    """The ranked window of a hit: its own bounds where it keeps them apart from its link's second."""
    start = getattr(hit, "window_start_s", None)
    end = getattr(hit, "window_end_s", None)
    return (hit.start_s if start is None else start, hit.end_s if end is None else end)


def is_relevant(hit: TimedHit, question: Question) -> bool:
    """Same video, and the hit's window overlaps the question's closed range."""
    start, end = window(hit)
    return hit.video_id == question.video_id and start <= question.end_s and end >= question.start_s


@dataclass(frozen=True, slots=True)
class Landing:
    """Where the first relevant hit's link opens, against the question's range."""

    inside: bool  # the link's second lies inside [start_s, end_s]
    distance_s: float  # how far the link's second is from start_s, either way


def landing(hit: TimedHit, question: Question) -> Landing:
    """Where `hit`'s link (its `start_s`, whole seconds as the link carries it) lands for `question`."""
    second = float(int(hit.start_s))
    return Landing(
        inside=question.start_s <= second <= question.end_s, distance_s=abs(second - question.start_s)
    )


def first_relevant_rank(hits: Sequence[TimedHit], question: Question) -> int | None:
    """1-based rank of the first relevant hit, or None."""
    for rank, hit in enumerate(hits, start=1):
        if is_relevant(hit, question):
            return rank
    return None


def recall_at(ranks: Iterable[int | None], k: int) -> float:
    """Share of questions with a relevant hit in the top k (each question has one answer range)."""
    ranks = list(ranks)
    return sum(1 for r in ranks if r is not None and r <= k) / len(ranks) if ranks else 0.0


def mrr_at(ranks: Iterable[int | None], k: int) -> float:
    """Mean reciprocal rank of the first relevant hit, counting 0 past rank k."""
    ranks = list(ranks)
    return sum(1.0 / r for r in ranks if r is not None and r <= k) / len(ranks) if ranks else 0.0


def score(ranks: Sequence[int | None], landings: Sequence[Landing] = ()) -> dict[str, float]:
    """The reported metrics for one mode: recall@5, recall@10, mrr@10 and n; with the first
    relevant hits' landings, also the share whose link opens inside the answer's range
    (`seek_inside`) and the median and 90th percentile of its distance from the range's start."""
    metrics: dict[str, float] = {
        "recall@5": round(recall_at(ranks, 5), 4),
        "recall@10": round(recall_at(ranks, 10), 4),
        "mrr@10": round(mrr_at(ranks, 10), 4),
        "n": len(ranks),
    }
    if landings:
        distances = sorted(landed.distance_s for landed in landings)
        metrics["seek_inside"] = round(sum(landed.inside for landed in landings) / len(landings), 4)
        metrics["seek_distance_median_s"] = round(distances[len(distances) // 2], 1)
        metrics["seek_distance_p90_s"] = round(
            distances[min(len(distances) - 1, int(0.9 * len(distances)))], 1
        )
    return metrics


def rank_and_landing(hits: Sequence[TimedHit], question: Question) -> tuple[int | None, Landing | None]:
    """The first relevant hit's rank among `hits` and where its link lands (None, None if none)."""
    rank = first_relevant_rank(hits, question)
    return rank, None if rank is None else landing(hits[rank - 1], question)


def evaluate(
    questions: Sequence[Question], search: Callable[[Question], Sequence[TimedHit]]
) -> dict[str, float]:
    """Run `search` (top 10 hits per question) over every question and score it."""
    results = [rank_and_landing(list(search(q))[:10], q) for q in questions]
    return score([rank for rank, _ in results], [landed for _, landed in results if landed is not None])
