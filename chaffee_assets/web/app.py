"""The ASGI application: `create_app()` wires settings, the connection pool, routers and protection.

Runs beside Dagster, never inside it: nothing here imports the Dagster code location.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from html import escape

import anyio.to_thread
import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from psycopg_pool import PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from chaffee_assets.warehouse.server import WarehouseError
from chaffee_assets.web.answers.writer import AnswersUnavailable
from chaffee_assets.web.context import WebContext
from chaffee_assets.web.metrics import MetricsMiddleware
from chaffee_assets.web.metrics import router as metrics_router
from chaffee_assets.web.protection import RateLimited, SecurityHeadersMiddleware
from chaffee_assets.web.queries import InputError
from chaffee_assets.web.question_log import QuestionLog
from chaffee_assets.web.rendering import STATIC_DIR
from chaffee_assets.web.routers import api, health, pages
from chaffee_assets.web.settings import WebSettings

log = logging.getLogger("chaffee_assets.web")

DESCRIPTION = """Search what was said in Dr. Anthony Chaffee's videos and jump to the second it was said.

Every response that is not a success is `{"error": "…"}` with a 4xx or 5xx status."""


def create_app(settings: WebSettings | None = None, *, database_url: str | None = None) -> FastAPI:
    """The application for one server process. Settings default to the environment, the database to
    the warehouse (`DATABASE_URL`, or the embedded server); its schema is brought up to date at start."""
    from chaffee_assets.warehouse.migrate import ensure_schema

    settings = settings or WebSettings.from_env()
    url = ensure_schema(database_url)
    context = WebContext(settings, url)
    question_log = QuestionLog(url, enabled=settings.question_log)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await anyio.to_thread.run_sync(context.open)
        await anyio.to_thread.run_sync(context.load_embedder)
        question_log.start()
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(question_log.close)
            await anyio.to_thread.run_sync(context.close)

    app = FastAPI(
        title="Ask Dr Chaffee",
        description=DESCRIPTION,
        version="1",
        lifespan=lifespan,
        # The interactive docs load their scripts from a CDN, which the content security policy
        # forbids; the schema itself is served and docs/web.md describes the API.
        docs_url=None,
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.web = context
    app.state.question_log = question_log
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(MetricsMiddleware)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(pages.router)
    app.include_router(api.router)
    app.include_router(health.router)
    app.include_router(metrics_router)
    _add_error_handlers(app)
    return app


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or request.url.path == "/healthz"


def _error(request: Request, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    if _wants_json(request):
        return JSONResponse({"error": message}, status_code=status, headers=headers)
    body = (
        '<!doctype html><html lang="en"><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>Ask Dr Chaffee</title><p>{escape(message)}</p><p><a href="/">Back to the search</a></p>'
    )
    return HTMLResponse(body, status_code=status, headers=headers)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(InputError)
    async def bad_input(request: Request, exc: InputError) -> Response:
        return _error(request, 400, str(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid_parameters(request: Request, exc: RequestValidationError) -> Response:
        problems = []
        for problem in exc.errors():
            name = str(problem["loc"][-1]) if problem.get("loc") else "request"
            problems.append(f"{name}: {problem['msg'][0].lower()}{problem['msg'][1:]}")
        return _error(request, 400, "; ".join(problems))

    @app.exception_handler(RateLimited)
    async def rate_limited(request: Request, exc: RateLimited) -> Response:
        return _error(request, 429, str(exc), {"Retry-After": str(exc.retry_after_s)})

    @app.exception_handler(AnswersUnavailable)
    async def answers_unavailable(request: Request, exc: AnswersUnavailable) -> Response:
        headers = {"Retry-After": str(exc.retry_after_s)} if exc.retry_after_s else None
        return _error(request, 503, str(exc), headers)

    @app.exception_handler(PoolTimeout)
    @app.exception_handler(psycopg.OperationalError)
    @app.exception_handler(WarehouseError)
    async def warehouse_unavailable(request: Request, exc: Exception) -> Response:
        log.warning("warehouse unavailable: %s", exc)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return _error(
            request, 503, f"the warehouse is unavailable ({first}); try again shortly", {"Retry-After": "5"}
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        message = "no such page" if exc.status_code == 404 else str(exc.detail)
        return _error(request, exc.status_code, message, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s", request.url.path)
        return _error(
            request, 500, f"the server failed on this request ({type(exc).__name__}); it has been logged"
        )
