"""Jinja2 templates with autoescaping always on, and URLs of static files that change with their content."""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from chaffee_assets.cli.search_cmd import clock
from chaffee_assets.web.answers.passages import NOTICE
from chaffee_assets.web.settings import MAX_QUERY_CHARS

WEB_DIR = Path(__file__).resolve().parent
TEMPLATES_DIR = WEB_DIR / "templates"
STATIC_DIR = WEB_DIR / "static"


@cache
def static_url(name: str) -> str:
    """`/static/NAME?v=HASH`: browsers may cache it for long, and a new release still reaches them."""
    digest = hashlib.sha256((STATIC_DIR / name).read_bytes()).hexdigest()[:12]
    return f"/static/{name}?v={digest}"


def _environment() -> jinja2.Environment:
    # Everything from the warehouse (titles, captions) may hold markup: escape every value, always.
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(static_url=static_url, clock=clock, notice=NOTICE, max_query_chars=MAX_QUERY_CHARS)
    return env


templates = Jinja2Templates(env=_environment())


def render(
    request: Request,
    name: str,
    context: dict[str, Any],
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    defaults: dict[str, Any] = {
        "search": None,
        "error": None,
        "answer_box": None,
        "videos": [],
        "hit_count": 0,
    }
    return templates.TemplateResponse(
        request, name, {**defaults, **context}, status_code=status_code, headers=headers
    )
