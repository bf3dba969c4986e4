"""The JSON API: `/api/search` (moments) and `/api/answer` (an answer with citations)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query

from chaffee_assets.retrieval.embedder import canonical_model_name
from chaffee_assets.web.answers.passages import NOTICE
from chaffee_assets.web.dependencies import Connection, Context, RateLimit
from chaffee_assets.web.models import AnswerResponse, Citation, ErrorResponse, SearchHit, SearchResponse
from chaffee_assets.web.protection import ANSWER_COST, SEARCH_COST
from chaffee_assets.web.queries import DEFAULT_K, checked_search
from chaffee_assets.web.settings import MAX_K, MAX_QUERY_CHARS

router = APIRouter(prefix="/api", tags=["api"])

ERRORS = {
    400: {
        "model": ErrorResponse,
        "description": "bad input: empty or over-long question, k out of range, bad dates",
    },
    429: {"model": ErrorResponse, "description": "rate limit reached; see the Retry-After header"},
}
Question = Annotated[
    str, Query(description=f"the question, in plain words (at most {MAX_QUERY_CHARS} characters)")
]
Mode = Annotated[
    Literal["hybrid", "vector", "text"],
    Query(description="hybrid: meaning and words fused; vector: meaning only; text: words only"),
]
From = Annotated[
    date | None, Query(alias="from", description="only videos published on or after (YYYY-MM-DD)")
]
To = Annotated[date | None, Query(alias="to", description="only videos published on or before (YYYY-MM-DD)")]


@router.get(
    "/search",
    response_model=SearchResponse,
    responses=ERRORS,
    dependencies=[Depends(RateLimit(SEARCH_COST))],
    summary="Moments that answer a question, best first",
)
def api_search(
    context: Context,
    conn: Connection,
    q: Question,
    k: Annotated[int, Query(ge=1, le=MAX_K, description="how many moments")] = DEFAULT_K,
    mode: Mode = "hybrid",
    published_from: From = None,
    published_to: To = None,
    speaker: Annotated[
        Literal["host"] | None, Query(description="host: only moments where the host speaks")
    ] = None,
) -> SearchResponse:
    request = checked_search(q, k, mode, published_from, published_to, speaker)
    hits = context.find_hits(conn, request)
    return SearchResponse(
        query=request.query,
        mode=request.mode,
        k=request.k,
        published_from=request.published_from,
        published_to=request.published_to,
        model=canonical_model_name(context.settings.embedding_model),
        hits=[SearchHit.model_validate(hit) for hit in hits],
    )


@router.get(
    "/answer",
    response_model=AnswerResponse,
    responses={
        **ERRORS,
        503: {
            "model": ErrorResponse,
            "description": "answers unavailable (not configured, the day's budget spent, the model unreachable); "
            "nothing was sent to the model",
        },
    },
    dependencies=[Depends(RateLimit(ANSWER_COST))],
    summary="A short answer written from the top moments, citing them as [n]",
)
def api_answer(
    context: Context,
    q: Question,
    mode: Mode = "hybrid",
    published_from: From = None,
    published_to: To = None,
) -> AnswerResponse:
    request = checked_search(q, DEFAULT_K, mode, published_from, published_to)
    answer = context.answers.answer(request)
    return AnswerResponse(
        query=request.query,
        answer=answer.text,
        answered=answer.answered,
        citations=[Citation.model_validate(c) for c in answer.citations],
        model=answer.model,
        cost_usd=answer.cost_usd,
        cached=answer.cached,
        notice=NOTICE,
    )
