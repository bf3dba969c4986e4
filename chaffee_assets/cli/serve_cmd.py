"""`chaffee serve`: the search page, the JSON API and answers, on the warehouse (never inside Dagster)."""

from __future__ import annotations

import argparse
import errno
import os
import socket
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve the search page and JSON API (http://127.0.0.1:8000)",
        description="Serve the search page, the JSON API (/api/search, /api/answer, /healthz) and, when "
        "OPENAI_API_KEY is set, answers with citations, on the same warehouse as everything else. "
        "Ctrl-C stops it.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes on this port, each with its own model (default 1)",
    )
    parser.add_argument("--no-access-log", action="store_true", help="do not log every request")
    parser.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    return serve(args.host, args.port, workers=args.workers, access_log=not args.no_access_log)


def serve(host: str, port: int, *, workers: int = 1, access_log: bool = True) -> int:
    """Check the settings, the port and the warehouse, say what is served, then run until Ctrl-C."""
    from chaffee_assets.cli.main import UserError

    if not 0 < port < 65536:
        raise UserError(f"--port must be between 1 and 65535, not {port}")
    if workers < 1:
        raise UserError("--workers must be at least 1")

    import uvicorn

    from chaffee_assets.error_text import redact as redact_secrets
    from chaffee_assets.error_text import register_secret, register_url_secrets
    from chaffee_assets.retrieval.embedder import EmbeddingModelError, canonical_model_name
    from chaffee_assets.search import embedder_for
    from chaffee_assets.warehouse import connect
    from chaffee_assets.warehouse.migrate import ensure_schema
    from chaffee_assets.warehouse.server import redact
    from chaffee_assets.web.log_config import log_config
    from chaffee_assets.web.request_limits import JsonErrorH11Protocol
    from chaffee_assets.web.settings import WebSettings

    settings = WebSettings.from_env()
    register_secret(settings.openai_api_key)
    register_url_secrets(settings.openai_base_url)
    require_free_port(host, port)
    url = ensure_schema()
    register_url_secrets(url)
    model = canonical_model_name(settings.embedding_model)
    with connect(url, autocommit=True) as conn:
        videos, segments, embedded = conn.execute(
            "SELECT (SELECT count(*) FROM videos), (SELECT count(*) FROM segments), "
            "(SELECT count(*) FROM segment_embeddings WHERE model = %s)",
            (model,),
        ).fetchone()
    print(f"warehouse: {redact(url)}")
    if segments == 0:
        print(
            "nothing is indexed yet: run `chaffee ingest --library DIR` (or `make demo`); the page says so too"
        )
    else:
        print(f"indexed: {videos} videos, {segments} segments ({embedded} embedded with {model})")
    if settings.answers_configured:
        where = redact_secrets(settings.openai_base_url) if settings.openai_base_url else "the OpenAI API"
        print(
            f"answers: {settings.answer_model} via {where}, "
            f"daily budget ${settings.answer_budget_usd:.2f} (CHAFFEE_ANSWER_BUDGET_USD)"
        )
    else:
        print("answers: off (set OPENAI_API_KEY to write answers with citations)")
    try:
        # Loaded before the port opens, so a bad model name is one line here, not a traceback later.
        embedder = embedder_for(settings.embedding_model, threads=settings.embedding_threads)
        embedder.encode_queries(["warm up"])
    except (OSError, EmbeddingModelError) as exc:
        raise UserError(f"cannot load embedding model {settings.embedding_model}: {exc}") from exc
    print(f"embedding questions with {model} on {embedder.query_runtime_name}")
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    print(
        f"Search page: http://{shown}:{port}/   (API: /api/search, /api/answer; Ctrl-C stops it)", flush=True
    )
    common = {
        "host": host,
        "port": port,
        "access_log": access_log,
        "log_level": "info",
        "proxy_headers": True,
        # Every log record is redacted; an oversize or malformed request head is answered as JSON.
        "log_config": log_config(),
        "http": JsonErrorH11Protocol,
    }
    if workers == 1:
        from chaffee_assets.web import create_app

        uvicorn.run(create_app(settings, database_url=url), **common)
    else:
        print(
            f"metrics: /metrics sums the {workers} workers' figures (kept in {multiprocess_metrics_dir(port)})"
        )
        uvicorn.run("chaffee_assets.cli.serve_cmd:worker_app", factory=True, workers=workers, **common)
    return 0


def multiprocess_metrics_dir(port: int) -> Path:
    """Where the worker processes write their metrics for `/metrics` to sum: PROMETHEUS_MULTIPROC_DIR,
    else a folder per port under CHAFFEE_HOME; emptied first, as prometheus-client requires (figures
    of a previous server would otherwise be added to this one's). Set before the workers start."""
    from chaffee_assets.settings import chaffee_home
    from chaffee_assets.web.metrics import MULTIPROC_ENV

    folder = Path(os.environ.get(MULTIPROC_ENV) or chaffee_home() / "metrics" / f"serve-{port}")
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink()
    os.environ[MULTIPROC_ENV] = str(folder)
    return folder


def worker_app():
    """The application in each of several worker processes (`--workers N`)."""
    from chaffee_assets.web import create_app
    from chaffee_assets.web.settings import WebSettings

    return create_app(WebSettings.from_env())


def require_free_port(host: str, port: int) -> None:
    from chaffee_assets.cli.main import UserError

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise UserError(
                    f"port {port} on {host} is in use (another server?): choose one with --port"
                ) from exc
            raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
