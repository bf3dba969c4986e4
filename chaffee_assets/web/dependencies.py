"""FastAPI dependencies: the process's context, a pooled connection, and the rate limit per route."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

import psycopg
from fastapi import Depends, Request

from chaffee_assets.web.context import WebContext


def get_context(request: Request) -> WebContext:
    return request.app.state.web


Context = Annotated[WebContext, Depends(get_context)]


def get_connection(context: Context) -> Iterator[psycopg.Connection]:
    with context.connection() as conn:
        yield conn


Connection = Annotated[psycopg.Connection, Depends(get_connection)]


def client_of(request: Request) -> str:
    """The client's address; behind a proxy, uvicorn sets it from X-Forwarded-For for trusted proxies."""
    return request.client.host if request.client else "unknown"


class RateLimit:
    """A dependency that spends `cost` of the client's rate limit, or answers 429. Synchronous, so
    FastAPI runs it in the thread pool: the shared limit asks the warehouse."""

    def __init__(self, cost: int) -> None:
        self.cost = cost

    def __call__(self, request: Request, context: Context) -> None:
        context.limiter.take(client_of(request), self.cost)
