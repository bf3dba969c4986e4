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
    from collections import Counter

    from chaffee_assets.cli.ingest_cmd import print_checks, run_ingest
    from chaffee_assets.cli.search_cmd import render
    from chaffee_assets.defs.partitions import MAX_PARTITIONS_PER_RUN
    from chaffee_assets.defs.resources import VideoSourceResource, video_source_config
    from chaffee_assets.golden_queries import golden_queries_path
    from chaffee_assets.search import search, snippets
    from chaffee_assets.settings import SAMPLE_LIBRARY, settings
    from chaffee_assets.warehouse import connect
    from chaffee_assets.warehouse.migrate import upgrade
    from chaffee_assets.warehouse.server import redact, warehouse_url

    if not args.no_serve:
        from chaffee_assets.cli.serve_cmd import require_free_port

        require_free_port("127.0.0.1", args.port)  # before the ingest, not after it
    upgrade()
    print(f"warehouse: {redact(warehouse_url())}")
    source_config = video_source_config(settings(), library_dir=str(SAMPLE_LIBRARY))
    source = VideoSourceResource(**source_config).get()
    days = sorted(source.publish_dates())
    videos_by_day = Counter({day: len(source.videos_published_on(day)) for day in days})
    print(f"ingesting {SAMPLE_LIBRARY} ({sum(videos_by_day.values())} videos) through Dagster …", flush=True)
    run_config = {"resources": {"video_source": {"config": source_config}}}
    report = run_ingest(days, videos_by_day, run_config, MAX_PARTITIONS_PER_RUN)
    if report.failed or report.problem:
        print(f"ingest failed ({report.problem or 'see the runs with `make dev`'})", file=sys.stderr)
        return 1
    # The sample library carries its own golden queries, so the demo's checks include them.
    print_checks(report, golden_queries_path(settings(), SAMPLE_LIBRARY))
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
