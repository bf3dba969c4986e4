"""The search page: server-rendered, so it works without JavaScript and every search has a URL."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from chaffee_assets.error_text import redact
from chaffee_assets.search import nothing_relevant
from chaffee_assets.search_input import without_control_characters
from chaffee_assets.web import observe
from chaffee_assets.web.answers.writer import AnswersUnavailable
from chaffee_assets.web.context import WebContext
from chaffee_assets.web.dependencies import Context, client_of
from chaffee_assets.web.moments import group_by_video, marked_snippets
from chaffee_assets.web.protection import ANSWER_COST, SEARCH_COST
from chaffee_assets.web.queries import InputError, SearchRequest, parsed_search, refuse_control_characters
from chaffee_assets.web.rendering import render
from chaffee_assets.web.timelines import speaker_timelines

router = APIRouter(include_in_schema=False)

EXAMPLE_QUESTIONS = (
    "Does high LDL cholesterol cause heart disease?",
    "Why avoid seed oils?",
    "What does he eat in a day?",
    "How long does fat adaptation take?",
)


def _form(
    q: str | None, k: str | None, mode: str | None, published_from: str | None, published_to: str | None
) -> dict[str, str]:
    """The form's fields as the visitor sent them, so a page with an error keeps what was typed (less
    any control character: a refused NUL is not written back into the page)."""
    fields = {"q": q, "k": k, "mode": mode or "hybrid", "from": published_from, "to": published_to}
    return {name: without_control_characters(value or "") for name, value in fields.items()}


@router.get("/", response_class=HTMLResponse)
def search_page(
    request: Request,
    context: Context,
    q: str | None = None,
    k: str | None = None,
    mode: str | None = None,
    published_from: Annotated[str | None, Query(alias="from")] = None,
    published_to: Annotated[str | None, Query(alias="to")] = None,
    answer: str | None = None,
    speaker: str | None = None,
) -> HTMLResponse:
    page: dict[str, Any] = {
        "form": {
            **_form(q, k, mode, published_from, published_to),
            "speaker": without_control_characters(speaker or ""),
        },
        "stats": context.stats(),
        "answers_on": context.settings.answers_configured,
        "examples": EXAMPLE_QUESTIONS,
    }
    if q is None:
        return render(request, "index.html", page)
    started = time.perf_counter()
    try:
        refuse_control_characters("answer", answer)
        search = parsed_search(q, k, mode, published_from, published_to, speaker)
    except InputError as exc:
        return render(request, "index.html", {**page, "error": str(exc)}, status_code=400)
    write_answer = bool(answer) and context.settings.answers_configured
    context.limiter.take(client_of(request), SEARCH_COST + (ANSWER_COST if write_answer else 0))
    with context.connection() as conn:
        hits = context.find_hits(conn, search)
        marked = marked_snippets(conn, search.query, hits)
        videos = group_by_video(hits, marked)
        timelines = speaker_timelines(
            conn, {v.video_id: [(m.start_s, m.end_s) for m in v.moments] for v in videos}
        )
    for video in videos:
        video.timeline = timelines.get(video.video_id)
    observe.searched(request, search, hits, started)
    page.update(
        search=search,
        videos=videos,
        hit_count=len(hits),
        nothing_relevant=nothing_relevant(hits),
        answer_box=_answer_box(context, search, write=write_answer) if hits else None,
    )
    if page["answer_box"] and "answer" in page["answer_box"]:
        observe.answered(request, search, page["answer_box"]["answer"], started)
    return render(request, "index.html", page)


def _answer_box(context: WebContext, search: SearchRequest, *, write: bool) -> dict[str, Any] | None:
    """The answer box's state: a saved or freshly written answer, why there is none, or 'pending'
    (the script fetches it; without the script a button asks for it)."""
    writer = context.answers
    if not context.settings.answers_configured:
        return {"off": True}
    cached = writer.cached(search)
    if cached is not None:
        return {"answer": cached}
    reason = writer.unavailable_reason()
    if reason:
        return {"error": redact(reason)}
    if not write:
        return {"pending": True}
    try:
        return {"answer": context.answer_pool.run_blocking(writer.answer, search)}
    except AnswersUnavailable as exc:
        return {"error": redact(str(exc))}


@router.get("/partials/answer", response_class=HTMLResponse)
async def answer_partial(
    request: Request,
    context: Context,
    q: str | None = None,
    mode: str | None = None,
    published_from: Annotated[str | None, Query(alias="from")] = None,
    published_to: Annotated[str | None, Query(alias="to")] = None,
) -> HTMLResponse:
    """The answer box alone, for the page's script to put in place once the answer is written."""
    try:
        search = parsed_search(q, None, mode, published_from, published_to)
    except InputError as exc:
        return render(request, "_answer.html", {"answer_box": {"error": str(exc)}}, status_code=400)
    if not context.settings.answers_configured:
        box: dict[str, Any] = {"error": redact(context.answers.unavailable_reason() or "")}
        return render(request, "_answer.html", {"search": search, "answer_box": box}, status_code=503)
    context.limiter.take(client_of(request), ANSWER_COST)
    started = time.perf_counter()
    try:
        context.answers.require_available()
        box = {"answer": await context.answer_pool.run(context.answers.answer, search)}
        observe.answered(request, search, box["answer"], started)
    except AnswersUnavailable as exc:
        return render(
            request,
            "_answer.html",
            {"search": search, "answer_box": {"error": redact(str(exc))}},
            status_code=503,
            headers={"Retry-After": str(exc.retry_after_s)} if exc.retry_after_s else None,
        )
    return render(request, "_answer.html", {"search": search, "answer_box": box})
