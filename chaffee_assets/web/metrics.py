"""`/metrics`: the server's figures in the Prometheus text format, from prometheus-client's own registry.

Requests by route and status, latency by route, searches and answers (with their own latency
histograms), answers served from the cache, answer spend, rate-limited requests and searches that
found nothing relevant. With several worker processes (`chaffee serve --workers N`) each process writes
its figures to files under PROMETHEUS_MULTIPROC_DIR and `/metrics` sums them all, so a scrape that
lands on any worker sees the whole server.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Searches take tens of milliseconds; answers seconds (a chat model's reply).
SEARCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
ANSWER_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0)
# A route is labelled by its template, never by the raw path: a scanner's random URLs would
# otherwise make one time series each.
UNMATCHED_ROUTE = "unmatched"

REQUESTS = Counter(
    "chaffee_http_requests",
    "HTTP requests answered, by route template, method and status",
    ["route", "method", "status"],
)
REQUEST_SECONDS = Histogram(
    "chaffee_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template",
    ["route"],
    buckets=SEARCH_BUCKETS,
)
RATE_LIMITED = Counter(
    "chaffee_rate_limited_requests", "Requests refused by the rate limit (HTTP 429)", ["route"]
)
SEARCHES = Counter("chaffee_searches", "Searches answered, by ranking mode", ["mode"])
NOTHING_RELEVANT = Counter(
    "chaffee_searches_nothing_relevant", "Searches whose every hit was judged not to answer the question"
)
SEARCH_SECONDS = Histogram(
    "chaffee_search_duration_seconds",
    "Time to find a search's moments (embedding and SQL)",
    buckets=SEARCH_BUCKETS,
)
ANSWERS = Counter("chaffee_answers", "Answers served, by where they came from (cache or model)", ["source"])
ANSWER_SECONDS = Histogram(
    "chaffee_answer_duration_seconds", "Time to serve an answer, cache hits included", buckets=ANSWER_BUCKETS
)
ANSWER_SPEND = Counter("chaffee_answer_spend_usd", "USD spent on the chat model for answers (settled cost)")
QUESTION_LOG_DROPPED = Counter(
    "chaffee_question_log_dropped",
    "Questions not written to the question log (queue full or warehouse refused)",
)

router = APIRouter(include_in_schema=False)


# Loopback and the networks a scraper beside the server sits on (RFC 1918, carrier-grade NAT as some
# clusters use, IPv6 unique-local and link-local). Not ipaddress's `is_private`, which also takes the
# documentation ranges (203.0.113.0/24, 2001:db8::/32) that a forged X-Forwarded-For may carry.
_INTERNAL_NETWORKS = tuple(
    ipaddress.ip_network(network)
    for network in (
        "127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10",
        "::1/128", "fc00::/7", "fe80::/10",
    )
)  # fmt: skip


def _internal(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])  # a zone index (fe80::1%eth0) is not part of it
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return any(address in network for network in _INTERNAL_NETWORKS)


def _may_scrape(request: Request) -> Response | None:
    """None when this client may read the figures, else the refusal.

    The figures (traffic, latency, what answers cost) are the operator's, not the audience's. With
    CHAFFEE_METRICS_TOKEN set, a scraper anywhere sends it as a bearer token; unset, only clients on
    loopback or a private network are answered (a Prometheus beside the server, on compose's
    network, in the cluster). Behind a proxy, the client is the address uvicorn takes from
    X-Forwarded-For for the proxies FORWARDED_ALLOW_IPS trusts, so the internet stays outside; where
    it trusts every address ('*'), only the token opens them.
    """
    token = request.app.state.web.settings.metrics_token
    if token:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
            return None
        return PlainTextResponse(
            "metrics need the bearer token (CHAFFEE_METRICS_TOKEN)\n",
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    if os.environ.get("FORWARDED_ALLOW_IPS", "").strip() == "*":
        # Every X-Forwarded-For is trusted: any client can name itself 127.0.0.1.
        return PlainTextResponse(
            "metrics need CHAFFEE_METRICS_TOKEN where FORWARDED_ALLOW_IPS is '*' (a client's own "
            "X-Forwarded-For names its address)\n",
            status_code=403,
        )
    if _internal(request.client.host if request.client else ""):
        return None
    return PlainTextResponse(
        "metrics are served to loopback and private networks only; set CHAFFEE_METRICS_TOKEN to "
        "scrape from elsewhere\n",
        status_code=403,
    )


@router.get("/metrics")
def metrics(request: Request) -> Response:
    """The exposition of this process, or of every worker process in multiprocess mode."""
    refusal = _may_scrape(request)
    if refusal is not None:
        return refusal
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        body = generate_latest(registry)
    else:
        body = generate_latest(REGISTRY)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def searched(mode: str, seconds: float, nothing_relevant: bool) -> None:
    SEARCHES.labels(mode).inc()
    SEARCH_SECONDS.observe(seconds)
    if nothing_relevant:
        NOTHING_RELEVANT.inc()


def answered(seconds: float, *, cached: bool, cost_usd: float) -> None:
    ANSWERS.labels("cache" if cached else "model").inc()
    ANSWER_SECONDS.observe(seconds)
    if cost_usd > 0:
        ANSWER_SPEND.inc(cost_usd)


Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class MetricsMiddleware:
    """Counts every HTTP request by route template, method and status, and times it (a plain ASGI
    middleware: no body is buffered, so it costs two clock reads and three label lookups)."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or _static_or_unmatched(scope)
            if route != "/metrics":
                REQUESTS.labels(route, scope.get("method", "GET"), str(status)).inc()
                REQUEST_SECONDS.labels(route).observe(time.perf_counter() - started)
                if status == 429:
                    RATE_LIMITED.labels(route).inc()


def _static_or_unmatched(scope: Scope) -> str:
    return "/static" if str(scope.get("path", "")).startswith("/static/") else UNMATCHED_ROUTE
