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
    library = _library_with_voices()
    source_config = video_source_config(settings(), library_dir=str(library))
    source = VideoSourceResource(**source_config).get()
    days = sorted(source.publish_dates())
    videos_by_day = Counter({day: len(source.videos_published_on(day)) for day in days})
    print(f"ingesting {library} ({sum(videos_by_day.values())} videos) through Dagster …", flush=True)
    run_config = {"resources": {"video_source": {"config": source_config}}}
    report = run_ingest(days, videos_by_day, run_config, MAX_PARTITIONS_PER_RUN)
    if report.failed or report.problem:
        print(f"ingest failed ({report.problem or 'see the runs with `make dev`'})", file=sys.stderr)
        return 1
    # The sample library carries its own golden queries, so the demo's checks include them.
    print_checks(report, golden_queries_path(settings(), SAMPLE_LIBRARY))
    with connect(autocommit=True) as conn:
        _print_speakers(conn)
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


def _library_with_voices():
    """The sample library with a synthesised recording of each talk beside its captions (in
    CHAFFEE_HOME, made once), and the host enrolled from his synthesised voice unless a host is
    enrolled already: so the demo's moments say whether the host or a guest speaks. Without espeak-ng
    the bundled library is ingested as it is, and who speaks stays unknown."""
    from chaffee_assets.settings import SAMPLE_LIBRARY, chaffee_home
    from chaffee_assets.speakers import sample_voices

    if not sample_voices.synthesiser_available():
        print(
            "speakers: espeak-ng is not installed, so the sample talks have no recordings and who speaks stays unknown"
        )
        return SAMPLE_LIBRARY
    destination = chaffee_home() / "sample_library_voiced"
    print(f"speakers: synthesising the sample talks' voices into {destination} (once) …", flush=True)
    sample_voices.voiced_library(SAMPLE_LIBRARY, destination)
    _enrol_demo_host(sample_voices)
    return destination


def _enrol_demo_host(sample_voices) -> None:
    from chaffee_assets.settings import settings
    from chaffee_assets.speakers.encoder import load_encoder
    from chaffee_assets.speakers.labelling import profile_from_samples
    from chaffee_assets.speakers.store import load_profiles, save_profile
    from chaffee_assets.warehouse import connect

    with connect() as conn:
        hosts = [profile.name for profile in load_profiles(conn) if profile.is_host]
        if hosts:
            print(f"speakers: the enrolled host is {hosts[0]}")
            return
        config = settings()
        encoder = load_encoder(config.speaker_model, config.speaker_device)
        profile = profile_from_samples(
            sample_voices.HOST_NAME, True, [sample_voices.host_enrolment()], encoder
        )
        save_profile(conn, profile, ["the demo's synthesised host voice"])
    print(f"speakers: enrolled {sample_voices.HOST_NAME} as the host from his synthesised voice")


def _print_speakers(conn) -> None:
    rows = conn.execute(
        "SELECT v.video_id, l.status, l.host_share FROM videos v "
        "JOIN speaker_labellings l ON l.video_id = v.video_id ORDER BY v.video_id"
    ).fetchall()
    if not rows:
        return
    shares = ", ".join(
        f"{video_id} {round(share * 100)}%"
        if status == "labelled" and share is not None
        else f"{video_id} unknown"
        for video_id, status, share in rows
    )
    print(f"\nthe host's share of each talk's speech: {shares}")
