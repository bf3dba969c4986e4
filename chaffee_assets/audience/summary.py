"""A day's questions summarised: near-duplicates grouped by their embeddings, most asked first, with how
often nothing in the library answered them; and the question log's retention.

Plain functions on a connection and an embedder; the Dagster asset (`defs/audience_assets.py`) calls them.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import psycopg

from chaffee_assets.retrieval.embedder import Embedder

# Two questions whose embeddings (the product's own model, with its query prompt) are at least this
# close are the same question asked in other words ("does LDL cause heart disease" / "is high LDL
# bad for the heart"); questions on different topics fall well below it with all-MiniLM-L6-v2.
SAME_QUESTION_COSINE = 0.8


@dataclass
class QuestionGroup:
    question: str  # the most asked wording
    variants: list[str] = field(default_factory=list)
    times_asked: int = 0
    times_unanswered: int = 0
    best_similarity: float | None = None


@dataclass(frozen=True)
class AskedQuestion:
    question: str
    times_asked: int
    times_unanswered: int
    best_similarity: float | None


def normalised(question: str) -> str:
    """Case, spacing and trailing punctuation do not make another question."""
    return re.sub(r"\s+", " ", question).strip().rstrip("?!. ").lower()


def asked_on(conn: psycopg.Connection, day: date) -> list[AskedQuestion]:
    """The day's (UTC) distinct questions, by normalised wording, most asked first."""
    rows = conn.execute(
        """
        SELECT question, nothing_relevant, best_similarity FROM question_log
        WHERE (asked_at AT TIME ZONE 'UTC')::date = %s ORDER BY asked_at
        """,
        (day,),
    ).fetchall()
    wording: dict[str, Counter[str]] = {}
    asked: Counter[str] = Counter()
    unanswered: Counter[str] = Counter()
    best: dict[str, float] = {}
    for question, nothing_relevant, similarity in rows:
        key = normalised(question)
        wording.setdefault(key, Counter())[question.strip()] += 1
        asked[key] += 1
        unanswered[key] += bool(nothing_relevant)
        if similarity is not None:
            best[key] = max(best.get(key, -1.0), float(similarity))
    return [
        AskedQuestion(wording[key].most_common(1)[0][0], count, unanswered[key], best.get(key))
        for key, count in sorted(asked.items(), key=lambda item: (-item[1], item[0]))
    ]


def group_questions(
    questions: list[AskedQuestion], embedder: Embedder, threshold: float = SAME_QUESTION_COSINE
) -> list[QuestionGroup]:
    """Greedy grouping, most asked first: a question joins the first group whose leading question is
    within `threshold` cosine of it, else leads a new group. Groups come back most asked first."""
    if not questions:
        return []
    vectors = embedder.encode_queries([q.question for q in questions])
    leaders: list[int] = []
    groups: list[QuestionGroup] = []
    for index, asked in enumerate(questions):
        similarities = vectors[leaders] @ vectors[index] if leaders else np.zeros(0)
        joined = (
            int(np.argmax(similarities)) if len(similarities) and similarities.max() >= threshold else None
        )
        if joined is None:
            leaders.append(index)
            groups.append(QuestionGroup(question=asked.question))
            group = groups[-1]
        else:
            group = groups[joined]
        group.variants.append(asked.question)
        group.times_asked += asked.times_asked
        group.times_unanswered += asked.times_unanswered
        if asked.best_similarity is not None:
            group.best_similarity = max(group.best_similarity or -1.0, asked.best_similarity)
    return sorted(groups, key=lambda g: (-g.times_asked, g.question))


def write_summary(conn: psycopg.Connection, day: date, groups: list[QuestionGroup]) -> None:
    """Replace the day's summary rows in one transaction."""
    with conn.transaction():
        conn.execute("DELETE FROM question_summaries WHERE day = %s", (day,))
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO question_summaries (day, rank, question, variants, times_asked, times_unanswered, "
                "best_similarity) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                [
                    (day, rank, g.question, g.variants, g.times_asked, g.times_unanswered, g.best_similarity)
                    for rank, g in enumerate(groups, start=1)
                ],
            )


def enforce_retention(conn: psycopg.Connection, today: date, keep_days: int) -> int:
    """Delete questions asked before the last `keep_days` days (UTC); returns how many."""
    cutoff = today - timedelta(days=keep_days)
    deleted = conn.execute(
        "DELETE FROM question_log WHERE asked_at < (%s::date)::timestamp AT TIME ZONE 'UTC'", (cutoff,)
    ).rowcount
    conn.execute("DELETE FROM question_summaries WHERE day < %s", (cutoff,))
    return deleted
