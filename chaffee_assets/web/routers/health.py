"""`/healthz`: whether this process can serve (for a load balancer), and what it serves."""

from __future__ import annotations

import psycopg
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout

from chaffee_assets.error_text import redact
from chaffee_assets.retrieval.embedder import canonical_model_name
from chaffee_assets.web.dependencies import Context
from chaffee_assets.web.models import Health
from chaffee_assets.web.warehouse_gate import WarehouseBusy, WarehouseUnavailable

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, responses={503: {"model": Health}})
def healthz(context: Context) -> JSONResponse:
    model = canonical_model_name(context.settings.embedding_model)
    answers = redact(context.answers.unavailable_reason() or "available")
    try:
        with context.connection() as conn:
            conn.execute("SELECT 1")
        stats = context.stats()
    except (psycopg.Error, PoolTimeout, WarehouseUnavailable, WarehouseBusy) as exc:
        # A fixed text: the driver's own names hosts, users and sometimes more (the log has it).
        state = "busy" if isinstance(exc, WarehouseBusy) else "unreachable"
        body = Health(status="unavailable", database=state, embedding_model=model, answers=answers)
        return JSONResponse(body.model_dump(), status_code=503, headers={"Retry-After": "1"})
    body = Health(
        status="ok",
        database="ok",
        videos=stats.videos,
        segments=stats.segments,
        embedded_segments=stats.embedded_segments,
        embedding_model=model,
        answers=answers,
    )
    return JSONResponse(body.model_dump())
