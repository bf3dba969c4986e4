"""The ASGI application: `create_app()` wires settings, the connection pool, routers and protection.

Runs beside Dagster, never inside it: nothing here imports the Dagster code location.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from html import escape
from typing import Any

import anyio.to_thread
import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from psycopg_pool import PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from chaffee_assets.error_text import redact, register_secret, register_url_secrets
from chaffee_assets.search_input import checked_mode, checked_query, refuse_control_characters, whole_number
from chaffee_assets.warehouse.server import WarehouseError
from chaffee_assets.web.answers.writer import AnswersUnavailable
from chaffee_assets.web.context import WebContext
from chaffee_assets.web.metrics import MetricsMiddleware
from chaffee_assets.web.metrics import router as metrics_router
from chaffee_assets.web.protection import RateLimited, SecurityHeadersMiddleware
from chaffee_assets.web.queries import InputError
from chaffee_assets.web.question_log import QuestionLog
from chaffee_assets.web.rendering import STATIC_DIR
from chaffee_assets.web.request_limits import RequestSizeMiddleware
from chaffee_assets.web.routers import api, health, pages
from chaffee_assets.web.settings import WebSettings
from chaffee_assets.web.warehouse_gate import WarehouseBusy, WarehouseUnavailable

log = logging.getLogger("chaffee_assets.web")

DESCRIPTION = """Search what was said in Dr. Anthony Chaffee's videos and jump to the second it was said.

Every response that is not a success is `{"error": "…"}` with a 4xx or 5xx status."""


def create_app(settings: WebSettings | None = None, *, database_url: str | None = None) -> FastAPI:
    """The application for one server process. Settings default to the environment, the database to
    the warehouse (`DATABASE_URL`, or the embedded server); its schema is brought up to date at start."""
    from chaffee_assets.warehouse.migrate import ensure_schema

    settings = settings or WebSettings.from_env()
    # Whatever the server shows or logs hides these by value, whatever text an upstream wraps them in.
    register_secret(settings.openai_api_key)
    register_url_secrets(settings.openai_base_url)
    register_url_secrets(database_url)
    url = ensure_schema(database_url)
    register_url_secrets(url)
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
    app.add_middleware(RequestSizeMiddleware)
    app.state.question_log = question_log
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(MetricsMiddleware)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(pages.router)
    app.include_router(api.router)
    app.include_router(health.router)
    app.include_router(metrics_router)
    _add_error_handlers(app)
    app.openapi = _openapi_with_400(app)  # type: ignore[method-assign]
    return app


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or request.url.path == "/healthz"


def _error(request: Request, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    # Every error the audience reads passes here: no password or key leaves in one.
    message = redact(message)
    if _wants_json(request):
        return JSONResponse({"error": message}, status_code=status, headers=headers)
    body = (
        '<!doctype html><html lang="en"><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>Ask Dr Chaffee</title><p>{escape(message)}</p><p><a href="/">Back to the search</a></p>'
    )
    return HTMLResponse(body, status_code=status, headers=headers)


def _shared_message(problem: dict[str, Any]) -> str:
    """A parameter FastAPI refused, in the words the page and the CLI use for the same mistake."""
    name = str(problem["loc"][-1]) if problem.get("loc") else "request"
    raw = problem.get("input")
    try:
        if name == "q" and problem["type"] == "missing":
            checked_query("")
        if problem["type"] == "int_parsing" and isinstance(raw, str):
            whole_number(name, raw)
        if name == "mode" and isinstance(raw, str):
            refuse_control_characters("the mode", raw)
            checked_mode(raw)
    except InputError as shared:
        return str(shared)
    return f"{name}: {problem['msg'][0].lower()}{problem['msg'][1:]}"


def _openapi_with_400(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """The schema as the server answers: a refused parameter is a 400 `{"error": …}`, never FastAPI's 422."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    operation.get("responses", {}).pop("422", None)
            for unused in ("HTTPValidationError", "ValidationError"):
                schema.get("components", {}).get("schemas", {}).pop(unused, None)
            app.openapi_schema = schema
        return app.openapi_schema

    return openapi


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(InputError)
    async def bad_input(request: Request, exc: InputError) -> Response:
        return _error(request, 400, str(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid_parameters(request: Request, exc: RequestValidationError) -> Response:
        return _error(request, 400, "; ".join(_shared_message(problem) for problem in exc.errors()))

    @app.exception_handler(RateLimited)
    async def rate_limited(request: Request, exc: RateLimited) -> Response:
        return _error(request, 429, str(exc), {"Retry-After": str(exc.retry_after_s)})

    @app.exception_handler(AnswersUnavailable)
    async def answers_unavailable(request: Request, exc: AnswersUnavailable) -> Response:
        headers = {"Retry-After": str(exc.retry_after_s)} if exc.retry_after_s else None
        return _error(request, 503, str(exc), headers)

    @app.exception_handler(WarehouseUnavailable)
    @app.exception_handler(WarehouseBusy)
    async def warehouse_refused(request: Request, exc: WarehouseUnavailable | WarehouseBusy) -> Response:
        return _error(request, 503, str(exc), {"Retry-After": str(exc.retry_after_s)})

    @app.exception_handler(PoolTimeout)
    @app.exception_handler(psycopg.OperationalError)
    @app.exception_handler(WarehouseError)
    async def warehouse_unavailable(request: Request, exc: Exception) -> Response:
        # The database's own text names hosts and users: it goes to the log, not to the audience.
        log.warning("warehouse unavailable on %s: %s", request.url.path, redact(str(exc)))
        return _error(request, 503, "the warehouse is unavailable; try again shortly", {"Retry-After": "5"})

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
