"""`chaffee demo`: ingest the bundled sample library through Dagster, then search it."""

from __future__ import annotations

import argparse

DEMO_QUESTIONS = (
    "does high LDL cholesterol cause heart attacks",
    "what should I eat for breakfast on a carnivore diet",
    "why avoid vegetable oils",
)


def register(subparsers: argparse._SubParsersAction) -> None:
    demo = subparsers.add_parser(
        "demo",
        help="ingest the bundled sample library and run a few searches (no network needed)",
        description="Start the database, ingest chaffee_assets/sample_library through Dagster "
        "(videos → transcripts → segments → embeddings), print linked search results, then serve "
        "the search page on it (`chaffee serve`) until Ctrl-C.",
    )
    demo.add_argument("-k", type=int, default=3, help="results per question (default 3)")
    demo.add_argument(
        "--port", type=int, default=8000, help="port of the search page it ends by serving (default 8000)"
    )
    demo.add_argument(
        "--no-serve", action="store_true", help="stop after the searches instead of serving the page"
    )
    demo.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    import sys

    from chaffee_assets.cli.search_cmd import render
    from chaffee_assets.dagster_instance import project_instance
    from chaffee_assets.definitions import INGEST_ASSETS, build_resources
    from chaffee_assets.defs.checks import SAMPLE_LIBRARY
    from chaffee_assets.defs.resources import VideoSourceResource
    from chaffee_assets.ingest_runner import materialize_days
    from chaffee_assets.search import search, snippets
    from chaffee_assets.warehouse import connect
    from chaffee_assets.warehouse.migrate import upgrade
    from chaffee_assets.warehouse.server import redact, warehouse_url

    if not args.no_serve:
        from chaffee_assets.cli.serve_cmd import require_free_port

        require_free_port("127.0.0.1", args.port)  # before the ingest, not after it
    upgrade()
    print(f"warehouse: {redact(warehouse_url())}")
    source = VideoSourceResource(library_dir=str(SAMPLE_LIBRARY))
    days = sorted(source.get().publish_dates())
    print(f"ingesting {SAMPLE_LIBRARY} ({len(days)} videos) through Dagster …", flush=True)
    with project_instance() as instance:
        report = materialize_days(
            INGEST_ASSETS,
            build_resources(video_source=source),
            days,
            instance=instance,
            on_progress=lambda i, n, r, ok: print(
                f"  run {i}/{n} {r}: {'ok' if ok else 'FAILED'}", flush=True
            ),
        )
    if report.failed:
        print("ingest failed; see the runs with `make dev`", file=sys.stderr)
        return 1
    with connect(autocommit=True) as conn:
        for question in DEMO_QUESTIONS:
            hits = search(question, k=args.k, conn=conn)
            texts = snippets(question, [h.text for h in hits], conn=conn, start="[", stop="]")
            print(f"\n$ chaffee search {question!r} -k {args.k}\n")
            print(render(hits, texts))
    print("\nThe sample talks are written for this demo; their links point at invented video ids.")
    print('Search yourself:   .venv/bin/chaffee search "how much salt on keto"')
    print("Dagster UI:        make dev    (in another terminal: both can run at once; http://127.0.0.1:3000)")
    if args.no_serve:
        return 0
    print("\nServing the search page on the sample library …", flush=True)
    # A fresh process, as `chaffee serve` would be: the page's server never holds Dagster's code.
    import os

    program = "import sys; from chaffee_assets.cli import main; sys.exit(main())"
    os.execv(sys.executable, [sys.executable, "-c", program, "serve", "--port", str(args.port)])
