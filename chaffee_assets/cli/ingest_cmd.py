"""`chaffee ingest`: materialise the asset graph for the days that have videos, and summarise."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import date

from chaffee_assets.transcription import registry


def register(subparsers: argparse._SubParsersAction) -> None:
    ingest = subparsers.add_parser(
        "ingest",
        help="ingest a local library or the channel through Dagster (runs appear in the UI)",
        description="Materialise videos → transcripts → segments → embeddings for every day in range "
        "that has videos, one Dagster run per range of days, then print a summary.",
    )
    where = ingest.add_mutually_exclusive_group()
    where.add_argument("--library", metavar="DIR", help="a folder laid out as yt-dlp writes it")
    where.add_argument("--channel", metavar="URL", help="a YouTube channel (default: $CHAFFEE_CHANNEL_URL or "
                       "@anthonychaffeemd)")  # fmt: skip
    ingest.add_argument("--from", dest="first", type=date.fromisoformat, metavar="YYYY-MM-DD",
                        help="first publish day (UTC) to ingest")  # fmt: skip
    ingest.add_argument("--to", dest="last", type=date.fromisoformat, metavar="YYYY-MM-DD",
                        help="last publish day (UTC) to ingest")  # fmt: skip
    ingest.add_argument("--force", action="store_true",
                        help="replace current transcripts even when the new one is not better")  # fmt: skip
    ingest.add_argument("--asr-engine", choices=registry.engine_spellings(),
                        help="force the speech-recognition engine for videos without captions")  # fmt: skip
    ingest.add_argument("--days-per-run", type=int, default=366, metavar="N",
                        help="longest span of days one run covers (default 366)")  # fmt: skip
    ingest.set_defaults(handler=_ingest)


def _ingest(args: argparse.Namespace) -> int:
    from chaffee_assets.cli.main import UserError
    from chaffee_assets.cli.terminal import printable
    from chaffee_assets.cli.termination import Terminated, watching_for_sigterm
    from chaffee_assets.dagster_instance import project_instance
    from chaffee_assets.definitions import INGEST_ASSETS, build_resources
    from chaffee_assets.defs.resources import VideoSourceResource, video_source_from_env
    from chaffee_assets.ingest_runner import days_between, materialize_days
    from chaffee_assets.warehouse.migrate import upgrade

    if args.library:
        if not os.path.isdir(args.library):
            raise UserError(f"library folder {args.library} does not exist")
        source_resource = VideoSourceResource(library_dir=os.path.abspath(args.library))
    elif args.channel:
        source_resource = video_source_from_env().model_copy(
            update={"channel_url": args.channel, "library_dir": None}
        )
    else:
        source_resource = video_source_from_env()

    upgrade()
    # Outside a run, EnvVar settings (API key, proxy) are resolved the way Dagster resolves them.
    source = source_resource.process_config_and_initialize().get()
    print(f"listing videos from {source.name} ({args.library or source_resource.channel_url}) …", flush=True)
    days = days_between(args.first, args.last, sorted(source.publish_dates()))
    for skipped in getattr(source, "skipped", lambda: [])():
        print(f"  skipped {printable(skipped.video_id)}: {printable(skipped.reason)}")
    if not days:
        print("no videos published in that range")
        return 0

    run_config = None
    if args.force or args.asr_engine:
        config = {"force": args.force, "asr_engine": args.asr_engine}
        run_config = {"ops": {"transcripts": {"config": config}}}

    def progress(index: int, total: int, day_range, ok: bool) -> None:
        print(f"  [{index}/{total}] {day_range}: {'ok' if ok else 'FAILED (see the run in the Dagster UI)'}",
              flush=True)  # fmt: skip
        if terminated():  # the run just ended was interrupted: start no other
            raise Terminated()

    print(f"{len(days)} day(s) with videos, {days[0]} … {days[-1]}", flush=True)
    with project_instance() as instance, watching_for_sigterm() as terminated:
        report = materialize_days(
            INGEST_ASSETS,
            build_resources(video_source=source_resource),
            days,
            instance=instance,
            max_span_days=args.days_per_run,
            run_config=run_config,
            on_progress=progress,
        )
    if report.skipped_days:
        print(
            f"warning: {len(report.skipped_days)} day(s) fall outside the partition calendar "
            f"(earliest {min(report.skipped_days)}); set CHAFFEE_START_DATE earlier to include them",
            file=sys.stderr,
        )
    _print_summary(days[0], days[-1])
    checks = report.check_evaluations
    print(f"  checks:       {len(checks) - len(report.failed_checks)} of {len(checks)} passed")
    for evaluation in report.failed_checks:
        print(
            f"    FAILED {evaluation.check_name} ({evaluation.severity.value}): {printable(_check_detail(evaluation))}"
        )
    return 1 if report.failed else 0


def _check_detail(evaluation) -> str:
    shown = {k: v.value for k, v in evaluation.metadata.items() if isinstance(v.value, int | float | str)}
    return ", ".join(f"{k}={str(v).splitlines()[0][:80]}" for k, v in shown.items())


def _print_summary(first: date, last: date) -> None:
    from chaffee_assets.warehouse.server import connect

    with connect() as conn:
        videos = conn.execute(
            "SELECT count(*) FROM videos WHERE partition_date BETWEEN %s AND %s", (first, last)
        ).fetchone()[0]
        by_source = conn.execute(
            """
            SELECT t.source, count(*) FROM transcripts t JOIN videos v USING (video_id)
            WHERE t.is_current AND v.partition_date BETWEEN %s AND %s GROUP BY 1 ORDER BY 2 DESC
            """,
            (first, last),
        ).fetchall()
        by_failure = conn.execute(
            """
            SELECT a.failure_class, count(*) FROM transcript_attempts a JOIN videos v USING (video_id)
            WHERE v.partition_date BETWEEN %s AND %s GROUP BY 1 ORDER BY 2 DESC
            """,
            (first, last),
        ).fetchall()
        segments = conn.execute(
            """
            SELECT count(*), count(DISTINCT s.video_id) FROM segments s JOIN videos v USING (video_id)
            WHERE v.partition_date BETWEEN %s AND %s
            """,
            (first, last),
        ).fetchone()
    print(f"\nsummary for {first} … {last}")
    print(f"  videos:       {videos}")
    print("  transcripts:  " + (", ".join(f"{n} {src}" for src, n in by_source) or "none"))
    print("  failures:     " + (", ".join(f"{n} {cls}" for cls, n in by_failure) or "none"))
    print(f"  segments:     {segments[0]} in {segments[1]} video(s)")
