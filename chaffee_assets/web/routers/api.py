"""The JSON API: `/api/search` (moments) and `/api/answer` (an answer with citations)."""

from __future__ import annotations

import time
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request

from chaffee_assets.retrieval.embedder import canonical_model_name
from chaffee_assets.web import observe
from chaffee_assets.web.answers.passages import NOTICE
from chaffee_assets.web.dependencies import Connection, Context, RateLimit
from chaffee_assets.web.models import AnswerResponse, Citation, ErrorResponse, SearchHit, SearchResponse
from chaffee_assets.web.protection import ANSWER_COST, SEARCH_COST
from chaffee_assets.web.queries import DEFAULT_K, checked_search, optional_day
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
# Dates are read as text and checked by the same rule as the page and the CLI (YYYY-MM-DD, nothing
# more: a time such as 2024-01-01T00:00 is refused), so all three say the same thing about them.
From = Annotated[
    str | None,
    Query(
        alias="from",
        description="only videos published on or after (YYYY-MM-DD)",
        json_schema_extra={"format": "date"},
    ),
]
To = Annotated[
    str | None,
    Query(
        alias="to",
        description="only videos published on or before (YYYY-MM-DD)",
        json_schema_extra={"format": "date"},
    ),
]
K = Annotated[
    int,
    Query(description=f"how many moments (1 to {MAX_K})", json_schema_extra={"minimum": 1, "maximum": MAX_K}),
]


@router.get(
    "/search",
    response_model=SearchResponse,
    responses=ERRORS,
    dependencies=[Depends(RateLimit(SEARCH_COST))],
    summary="Moments that answer a question, best first",
)
def api_search(
    http_request: Request,
    context: Context,
    conn: Connection,
    q: Question,
    k: K = DEFAULT_K,
    mode: Mode = "hybrid",
    published_from: From = None,
    published_to: To = None,
    speaker: Annotated[
        Literal["host"] | None, Query(description="host: only moments where the host speaks")
    ] = None,
) -> SearchResponse:
    started = time.perf_counter()
    request = checked_search(
        q, k, mode, optional_day("from", published_from), optional_day("to", published_to), speaker
    )
    hits = context.find_hits(conn, request)
    observe.searched(http_request, request, hits, started)
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
async def api_answer(
    http_request: Request,
    context: Context,
    q: Question,
    mode: Mode = "hybrid",
    published_from: From = None,
    published_to: To = None,
) -> AnswerResponse:
    started = time.perf_counter()
    request = checked_search(
        q, DEFAULT_K, mode, optional_day("from", published_from), optional_day("to", published_to)
    )
    # A paused model is refused here at no cost; otherwise the answer is written on the answer pool,
    # and a full pool is refused at once: this route never holds a thread that searches need.
    context.answers.require_available()
    answer = await context.answer_pool.run(context.answers.answer, request)
    observe.answered(http_request, request, answer, started)
    return AnswerResponse(
        query=request.query,
        answer=answer.text,
        answered=answer.answered,
        citations=[Citation.model_validate(c) for c in answer.citations],
        model=answer.model if answer.written_by_model else None,
        cost_usd=answer.cost_usd,
        cached=answer.cached,
        notice=NOTICE,
    )
