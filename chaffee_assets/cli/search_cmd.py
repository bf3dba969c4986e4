"""`chaffee search`: find what was said about something, with links to the second it was said."""

from __future__ import annotations

import argparse
import json
import sys

from chaffee_assets.search import DEFAULT_MODE, MODES
from chaffee_assets.search_input import MAX_K, InputError, checked_k, checked_query, checked_range, day


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "search",
        help="search the transcripts; prints titles, timestamps and deep links",
        description="Search every embedded transcript segment in the warehouse. Hybrid mode fuses "
        "semantic (vector) and keyword (full-text) rankings.",
    )
    parser.add_argument("query", help="what to look for, in plain words")
    parser.add_argument("-k", type=int, default=10, help=f"number of hits (default 10, at most {MAX_K})")
    parser.add_argument(
        "--mode", choices=MODES, default=DEFAULT_MODE, help=f"ranking to use (default {DEFAULT_MODE})"
    )
    parser.add_argument(
        "--from", dest="published_from", metavar="YYYY-MM-DD", help="only videos published on or after"
    )
    parser.add_argument(
        "--to", dest="published_to", metavar="YYYY-MM-DD", help="only videos published on or before"
    )
    parser.add_argument(
        "--video", dest="video_ids", action="append", metavar="VIDEO_ID", help="only this video (repeatable)"
    )
    parser.add_argument(
        "--model",
        default=None,
        help="embedding model whose vectors to search (name or path; default $CHAFFEE_EMBEDDING_MODEL, "
        "else all-MiniLM-L6-v2)",
    )
    parser.add_argument(
        "--per-video",
        type=int,
        default=None,
        metavar="N",
        help="at most N hits per video (default 5; 0 = no limit)",
    )
    parser.add_argument(
        "--speaker",
        choices=("host",),
        default=None,
        help="host: only moments where the host speaks (see `chaffee speakers`)",
    )
    parser.add_argument("--json", action="store_true", help="print the hits as a JSON array")
    parser.set_defaults(handler=run)


def clock(seconds: float) -> str:
    """mm:ss, or h:mm:ss past an hour."""
    total = int(seconds)
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    # The page and the API check a search with the same rules and say the same thing when one fails.
    try:
        args.query = checked_query(args.query)
        checked_k(args.k)
        args.published_from = day("from", args.published_from) if args.published_from else None
        args.published_to = day("to", args.published_to) if args.published_to else None
        checked_range(args.published_from, args.published_to)
    except InputError as exc:
        return _fail(str(exc))
    if args.per_video is not None and args.per_video < 0:
        return _fail("--per-video must be 0 or more")

    import psycopg

    from chaffee_assets.cli.terminal import printable
    from chaffee_assets.retrieval.embedder import EmbeddingModelError
    from chaffee_assets.search import SearchOptions, configured_model, search, snippets
    from chaffee_assets.warehouse import WarehouseError, connect
    from chaffee_assets.warehouse.migrate import ensure_schema

    model = args.model or configured_model()
    options = SearchOptions()
    if args.per_video is not None:
        options = SearchOptions(max_per_video=args.per_video or None)
    try:
        url = ensure_schema()
        with connect(url, autocommit=True) as conn:
            hits = search(
                args.query,
                args.k,
                args.mode,
                model=model,
                published_from=args.published_from,
                published_to=args.published_to,
                video_ids=args.video_ids,
                options=options,
                conn=conn,
                speaker=args.speaker,
            )
            if args.json:
                print(json.dumps([hit.as_dict() for hit in hits], ensure_ascii=False, indent=2))
                return 0
            if not hits:
                print(no_matches_hint(conn, args, model))
                return 0
            bold = sys.stdout.isatty()
            marks = ("\033[1m", "\033[0m") if bold else ("[", "]")
            # Control characters go before the marks are added: the marks are the only ones printed.
            texts = snippets(
                args.query, [printable(h.text) for h in hits], conn=conn, start=marks[0], stop=marks[1]
            )
    except (WarehouseError, EmbeddingModelError, ValueError) as exc:
        return _fail(str(exc))
    except psycopg.Error as exc:
        return _fail(database_problem(exc, model))
    print(render(hits, texts, query=args.query))
    return 0


def database_problem(exc: Exception, model: str) -> str:
    """One line for a database error, with a hint only where the hint is true."""
    import psycopg

    from chaffee_assets.error_text import one_line

    diag = getattr(exc, "diag", None)
    first = one_line((diag.message_primary if diag else None) or exc)
    if isinstance(exc, psycopg.OperationalError):
        return f"lost the connection to PostgreSQL ({first}); try again"
    if isinstance(exc, psycopg.errors.UndefinedFunction | psycopg.errors.UndefinedTable):
        return f"the warehouse schema is not current ({first}): run `chaffee db upgrade`"
    if "is not registered" in first:
        return (
            f"{first}: nothing has been embedded with {model} (run `chaffee ingest` with "
            f"CHAFFEE_EMBEDDING_MODEL={model}, or search with --model of an embedded model)"
        )
    if "dimensions" in first:
        return f"{first} (the warehouse holds {model} vectors of another size: was the model replaced?)"
    return f"the database refused the search: {first}"


def no_matches_hint(conn, args: argparse.Namespace, model: str) -> str:
    """Why a search found nothing, from what the warehouse holds."""
    from chaffee_assets.retrieval.embedder import canonical_model_name

    segments, embedded = conn.execute(
        "SELECT (SELECT count(*) FROM segments), (SELECT count(*) FROM segment_embeddings WHERE model = %s)",
        (canonical_model_name(model),),
    ).fetchone()
    if segments == 0:
        return "no matches: nothing is indexed yet (run `chaffee ingest`, or `chaffee demo` for the sample library)"
    filters = args.published_from or args.published_to or args.video_ids
    if args.mode == "text":
        hint = "none of the query's words occur in the transcripts"
        hint += "; widen --from/--to or drop --video" if filters else "; try other words or --mode hybrid"
        return f"no matches: {hint}"
    if embedded == 0:
        return (
            f"no matches: no segment is embedded with {model} yet (run `chaffee ingest`, or try --mode text)"
        )
    return "no matches in that range: widen --from/--to or drop --video" if filters else "no matches"


def render(hits, texts: list[str], *, query: str | None = None) -> str:
    """Hits grouped under their video, videos in order of their best hit.

    When every hit is below the model's relevance floor, a first line says the library holds
    nothing closely related, and each weak hit is marked.
    """
    from chaffee_assets.cli.terminal import printable
    from chaffee_assets.search import nothing_relevant

    order: dict[str, list[int]] = {}
    for i, hit in enumerate(hits):
        order.setdefault(hit.video_id, []).append(i)
    lines: list[str] = []
    if nothing_relevant(hits):
        about = f" to {printable(query)!r}" if query else ""
        lines += [f"Nothing in the library is closely related{about}; the nearest moments are:", ""]
    for indexes in order.values():
        first = hits[indexes[0]]
        published = f" ({first.published_at:%Y-%m-%d})" if first.published_at else ""
        lines.append(f"{printable(first.title)}{published}")
        for i in indexes:
            hit = hits[i]
            weak = "  (weakly related)" if hit.weak else ""
            if hit.speaker is not None and hit.host_share is not None and hit.host_share < 0.5:
                who = "a guest or caller" if hit.speaker == "other" else printable(hit.speaker)
                weak += f"  ({who} speaks here, not the host)"
            lines.append(f"  {clock(hit.start_s)}  {hit.link}{weak}")
            lines.append(f"        {' '.join(texts[i].split())}")
        lines.append("")
    return "\n".join(lines).rstrip()
