"""What each search and answer tells the operator and the channel's owner: one call per route feeds both
the metrics (`metrics.py`) and the question log (`question_log.py`). Neither does I/O here."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime

from fastapi import Request

from chaffee_assets.search import nothing_relevant
from chaffee_assets.web import metrics
from chaffee_assets.web.answers.writer import Answer
from chaffee_assets.web.dependencies import client_of
from chaffee_assets.web.queries import SearchRequest
from chaffee_assets.web.question_log import QuestionLog, QuestionRecord


def _question_log(request: Request) -> QuestionLog | None:
    return getattr(request.app.state, "question_log", None)


def _best_similarity(items: Sequence[dict[str, object]]) -> float | None:
    values = [float(v) for item in items if isinstance(v := item.get("similarity"), int | float)]
    return max(values) if values else None


def searched(
    request: Request, search: SearchRequest, hits: Sequence[dict[str, object]], started: float
) -> None:
    """A search answered with `hits`, `started` being `time.perf_counter()` at the request's start."""
    seconds = time.perf_counter() - started
    unanswered = not hits or nothing_relevant(hits)
    metrics.searched(search.mode, seconds, unanswered)
    question_log = _question_log(request)
    if question_log is not None:
        question_log.record(
            QuestionRecord(
                asked_at=datetime.now(UTC),
                question=search.query,
                mode=search.mode,
                kind="search",
                published_from=search.published_from,
                published_to=search.published_to,
                hits=len(hits),
                best_similarity=_best_similarity(hits),
                nothing_relevant=unanswered,
                latency_ms=seconds * 1000,
                client=client_of(request),
            )
        )


def answered(request: Request, search: SearchRequest, answer: Answer, started: float) -> None:
    """An answer served (written now or from the cache)."""
    seconds = time.perf_counter() - started
    metrics.answered(seconds, cached=answer.cached, cost_usd=answer.cost_usd)
    question_log = _question_log(request)
    if question_log is not None:
        question_log.record(
            QuestionRecord(
                asked_at=datetime.now(UTC),
                question=search.query,
                mode=search.mode,
                kind="answer",
                published_from=search.published_from,
                published_to=search.published_to,
                hits=len(answer.citations),
                best_similarity=_best_similarity(answer.citations),
                nothing_relevant=not answer.answered,
                latency_ms=seconds * 1000,
                client=client_of(request),
                answer_cost_usd=answer.cost_usd,
                answer_cached=answer.cached,
            )
        )
