"""`chaffee search`: find what was said about something, with links to the second it was said."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date

MODES = ("hybrid", "vector", "text")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "search",
        help="search the transcripts; prints titles, timestamps and deep links",
        description="Search every embedded transcript segment in the warehouse. Hybrid mode fuses "
        "semantic (vector) and keyword (full-text) rankings.",
    )
    parser.add_argument("query", help="what to look for, in plain words")
    parser.add_argument("-k", type=int, default=10, help="number of hits (default 10)")
    parser.add_argument("--mode", choices=MODES, default="hybrid", help="ranking to use (default hybrid)")
    parser.add_argument(
        "--from", dest="published_from", type=_date, help="only videos published on or after (YYYY-MM-DD)"
    )
    parser.add_argument(
        "--to", dest="published_to", type=_date, help="only videos published on or before (YYYY-MM-DD)"
    )
    parser.add_argument(
        "--video", dest="video_ids", action="append", metavar="VIDEO_ID", help="only this video (repeatable)"
    )
    parser.add_argument(
        "--model", default="all-MiniLM-L6-v2", help="embedding model whose vectors to search (name or path)"
    )
    parser.add_argument(
        "--per-video",
        type=int,
        default=None,
        metavar="N",
        help="at most N hits per video (default 5; 0 = no limit)",
    )
    parser.add_argument("--json", action="store_true", help="print the hits as a JSON array")
    parser.set_defaults(handler=run)


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date (YYYY-MM-DD)") from None


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
    if args.k < 1:
        return _fail("-k must be at least 1")
    if args.per_video is not None and args.per_video < 0:
        return _fail("--per-video must be 0 or more")
    if args.published_from and args.published_to and args.published_from > args.published_to:
        return _fail("--from is after --to")
    if not args.query.strip():
        return _fail("the query is empty")

    import psycopg

    from chaffee_assets.search import SearchOptions, search, snippets
    from chaffee_assets.warehouse import WarehouseError, connect
    from chaffee_assets.warehouse.migrate import ensure_schema

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
                model=args.model,
                published_from=args.published_from,
                published_to=args.published_to,
                video_ids=args.video_ids,
                options=options,
                conn=conn,
            )
            if args.json:
                print(json.dumps([hit.as_dict() for hit in hits], ensure_ascii=False, indent=2))
                return 0
            bold = sys.stdout.isatty()
            marks = ("\033[1m", "\033[0m") if bold else ("[", "]")
            texts = snippets(args.query, [h.text for h in hits], conn=conn, start=marks[0], stop=marks[1])
    except (WarehouseError, ValueError) as exc:
        return _fail(str(exc))
    except psycopg.Error as exc:
        first = (exc.diag.message_primary or str(exc)).strip().splitlines()[0]
        return _fail(f"{first} (has `chaffee ingest` embedded segments with model {args.model}?)")
    except OSError as exc:
        return _fail(f"cannot load embedding model {args.model}: {exc}")
    if not hits:
        print("no matches (is anything embedded yet? try `--mode text`, or widen --from/--to)")
        return 0
    print(render(hits, texts))
    return 0


def render(hits, texts: list[str]) -> str:
    """Hits grouped under their video, videos in order of their best hit."""
    order: dict[str, list[int]] = {}
    for i, hit in enumerate(hits):
        order.setdefault(hit.video_id, []).append(i)
    lines: list[str] = []
    for indexes in order.values():
        first = hits[indexes[0]]
        published = f" ({first.published_at:%Y-%m-%d})" if first.published_at else ""
        lines.append(f"{first.title}{published}")
        for i in indexes:
            hit = hits[i]
            lines.append(f"  {clock(hit.start_s)}  {hit.link}")
            lines.append(f"        {' '.join(texts[i].split())}")
        lines.append("")
    return "\n".join(lines).rstrip()
