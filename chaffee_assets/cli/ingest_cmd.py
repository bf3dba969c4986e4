"""`chaffee ingest`: materialise the asset graph for the days that have videos, and summarise."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections import Counter
from datetime import date

from chaffee_assets.transcription import registry


def register(subparsers: argparse._SubParsersAction) -> None:
    ingest = subparsers.add_parser(
        "ingest",
        help="ingest a local library or the channel through Dagster (runs appear in the UI)",
        description="Materialise videos → transcripts → segments → embeddings for every day in range "
        "that has videos, as runs of the code location's ingest_job, then print a summary. With a "
        "Dagster daemon running (chaffee dev) the days go to it as one backfill; otherwise the runs "
        "execute in this process. Either way the UI lists the runs and can re-execute them.",
    )
    where = ingest.add_mutually_exclusive_group()
    where.add_argument("--library", metavar="DIR", help="a folder laid out as yt-dlp writes it")
    where.add_argument("--channel", metavar="URL", help="a YouTube channel (default: $CHAFFEE_CHANNEL_URL or "
                       "@anthonychaffeemd)")  # fmt: skip
    ingest.add_argument("--from", dest="first", metavar="YYYY-MM-DD",
                        help="first publish day (UTC) to ingest")  # fmt: skip
    ingest.add_argument("--to", dest="last", metavar="YYYY-MM-DD",
                        help="last publish day (UTC) to ingest")  # fmt: skip
    ingest.add_argument("--force", action="store_true",
                        help="replace current transcripts even when the new one is not better")  # fmt: skip
    ingest.add_argument("--asr-engine", choices=registry.engine_spellings(),
                        help="force the speech-recognition engine for videos without captions")  # fmt: skip
    ingest.add_argument("--days-per-run", type=int, metavar="N",
                        help="longest span of days one run covers (default, and the most allowed: the "
                        "assets' backfill policy)")  # fmt: skip
    ingest.add_argument("--in-process", action="store_true",
                        help="run in this process even when a Dagster daemon is running")  # fmt: skip
    ingest.set_defaults(handler=_ingest)


def _ingest(args: argparse.Namespace) -> int:
    from chaffee_assets.cli.main import UserError
    from chaffee_assets.cli.terminal import printable
    from chaffee_assets.defs.partitions import MAX_PARTITIONS_PER_RUN
    from chaffee_assets.defs.resources import VideoSourceResource, video_source_config
    from chaffee_assets.golden_queries import GoldenQueriesError, golden_queries_path, load_golden_queries
    from chaffee_assets.ingest_runner import calendar_days, days_between
    from chaffee_assets.search_input import InputError, day
    from chaffee_assets.settings import settings
    from chaffee_assets.warehouse.migrate import upgrade

    try:
        # The same rule and message as the search page's and the API's date filters.
        args.first = day("from", args.first) if args.first else None
        args.last = day("to", args.last) if args.last else None
    except InputError as exc:
        raise UserError(str(exc)) from None
    days_per_run = MAX_PARTITIONS_PER_RUN if args.days_per_run is None else args.days_per_run
    if not 1 <= days_per_run <= MAX_PARTITIONS_PER_RUN:
        raise UserError(
            f"--days-per-run must be 1 to {MAX_PARTITIONS_PER_RUN} (the assets' backfill policy), "
            f"not {days_per_run}"
        )
    if args.library and not os.path.isdir(args.library):
        raise UserError(f"library folder {args.library} does not exist")
    config = settings()
    source_config = video_source_config(
        config, library_dir=os.path.abspath(args.library) if args.library else None, channel_url=args.channel
    )
    golden = golden_queries_path(config, source_config["library_dir"])
    if golden:
        try:
            load_golden_queries(golden)
        except GoldenQueriesError as exc:
            raise UserError(str(exc)) from None

    upgrade()
    source = VideoSourceResource(
        **{**source_config, "youtube_api_key": config.youtube_api_key, "proxy": config.youtube_proxy}
    ).get()
    origin = source_config["library_dir"] or source_config["channel_url"]
    print(f"listing videos from {source.name} ({origin}) …", flush=True)
    publish_dates = source.publish_dates()
    days = days_between(args.first, args.last, sorted(publish_dates))
    for skipped in getattr(source, "skipped", lambda: [])():
        print(f"  skipped {printable(skipped.video_id)}: {printable(skipped.reason)}")
    empty_days = [d for d in calendar_days(args.first, args.last) if d not in publish_dates]
    if not days:
        print("no videos published in that range")
        _mark_empty_days(empty_days, source.name)
        return 0
    videos_by_day = Counter({day: len(source.videos_published_on(day)) for day in days})

    run_config: dict = {"resources": {"video_source": {"config": source_config}}}
    if args.force or args.asr_engine:
        run_config["ops"] = {"transcripts": {"config": {"force": args.force, "asr_engine": args.asr_engine}}}
    print(
        f"{len(days)} day(s) with {sum(videos_by_day.values())} video(s), {days[0]} … {days[-1]}", flush=True
    )
    report = run_ingest(days, videos_by_day, run_config, days_per_run, use_daemon=not args.in_process)
    if report.skipped_days:
        print(
            f"warning: {len(report.skipped_days)} day(s) fall outside the partition calendar "
            f"(earliest {min(report.skipped_days)}); set CHAFFEE_START_DATE earlier to include them",
            file=sys.stderr,
        )
    _mark_empty_days(empty_days, source.name)
    _print_summary(days[0], days[-1])
    print_checks(report, golden)
    if report.problem:
        print(f"error: {report.problem} (see it under Overview → Backfills in the UI)", file=sys.stderr)
    return 1 if report.failed or report.problem else 0


def _mark_empty_days(empty_days, source_name: str) -> None:
    """Days the source lists no video on count as done in the UI (runless materialisations)."""
    from chaffee_assets.dagster_instance import project_instance
    from chaffee_assets.definitions import INGEST_ASSETS
    from chaffee_assets.ingest_runner import mark_empty_days

    if not empty_days:
        return
    started = time.monotonic()
    with project_instance() as instance:
        written = mark_empty_days(instance, [asset.key for asset in INGEST_ASSETS], empty_days, source_name)
    print(
        f"{len(empty_days)} day(s) without videos in range count as done "
        f"({written} new empty-day record(s), {time.monotonic() - started:.1f} s)",
        flush=True,
    )


def run_ingest(days, videos_by_day, run_config: dict, days_per_run: int, *, use_daemon: bool = True):
    """The runs for `days` on the project's instance, with progress on stdout; returns the report."""
    from chaffee_assets.cli.progress import IngestProgress
    from chaffee_assets.cli.termination import watching_for_sigterm
    from chaffee_assets.dagster_instance import project_instance
    from chaffee_assets.ingest_runner import daemon_running, group_days, ingest_days, partitionable

    with project_instance() as instance, watching_for_sigterm() as terminated, _event_log_notices_hidden():
        ranges = group_days(partitionable(days)[0], days_per_run)
        through_daemon = use_daemon and daemon_running(instance)
        how = "as one backfill through the running Dagster daemon" if through_daemon else "in this process"
        print(f"{len(ranges)} run(s) of ingest_job of up to {days_per_run} days, {how}", flush=True)
        progress = _StopOnSigterm(IngestProgress(sys.stdout, videos_by_day, ranges), terminated)
        try:
            report = ingest_days(
                days,
                instance=instance,
                run_config=run_config,
                max_span_days=days_per_run,
                watcher=progress,
                use_daemon=use_daemon,
            )
        finally:
            progress.close()
    if report.closed_runs:
        print(
            f"marked {len(report.closed_runs)} run(s) failed that a stopped command had left open: "
            + ", ".join(run_id[:8] for run_id in report.closed_runs)
        )
    if through_daemon and "daemon" not in report.how:
        print("the daemon did not pick the backfill up; the runs went in this process instead")
    return report


# Dagster writes this to stderr, for each event its storage failed to take, before raising the
# error; the command ends with one line naming the error instead.
_EVENT_LOG_NOTICE = "Exception while writing logger call to event log"


class _WithoutNotice:
    """stderr less Dagster's notice that an event could not be stored."""

    def __init__(self, stream) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        return len(text) if text.startswith(_EVENT_LOG_NOTICE) else self._stream.write(text)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


@contextlib.contextmanager
def _event_log_notices_hidden():
    original = sys.stderr
    sys.stderr = _WithoutNotice(original)
    try:
        yield
    finally:
        sys.stderr = original


class _StopOnSigterm:
    """Progress that also stops the command after a run SIGTERM interrupted.

    An in-process Dagster run takes the signal over: it fails the running step, and the command
    would go on to the next range. Checked as each run ends, the signal stops it there instead.
    """

    def __init__(self, progress, terminated) -> None:
        self._progress = progress
        self._terminated = terminated

    def run_started(self, run_id, day_range) -> None:
        self._progress.run_started(run_id, day_range)

    def event(self, run_id, event) -> None:
        self._progress.event(run_id, event)

    def run_finished(self, run_id, day_range, ok: bool) -> None:
        from chaffee_assets.cli.termination import Terminated

        self._progress.run_finished(run_id, day_range, ok)
        if self._terminated():
            raise Terminated()

    def close(self) -> None:
        self._progress.close()


def print_checks(report, golden_file) -> None:
    """How many check results passed, each failure with its day, and why a check was not evaluated."""
    from chaffee_assets.cli.terminal import printable

    evaluations = report.check_evaluations
    days = {e.partition for e in evaluations if e.partition}
    print(f"  checks:       {len(evaluations) - len(report.failed_checks)} of {len(evaluations)} passed "
          f"({len(days)} day(s))")  # fmt: skip
    for evaluation in report.failed_checks:
        day = evaluation.partition or "this run"
        print(
            f"    FAILED {evaluation.check_name} on {day} ({evaluation.severity.value}): "
            f"{printable(_check_detail(evaluation))}"
        )
    if not any(e.check_name == "segment_embeddings_golden_queries_check" for e in evaluations):
        from chaffee_assets.golden_queries import NOT_CONFIGURED

        reason = (
            NOT_CONFIGURED if golden_file is None else f"no question in {golden_file} is about these days"
        )
        print(f"  golden queries: skipped, {reason}")


def _check_detail(evaluation) -> str:
    shown = {k: v.value for k, v in evaluation.metadata.items() if isinstance(v.value, int | float | str)}
    return ", ".join(f"{k}={str(v).splitlines()[0][:80]}" for k, v in shown.items())


def failure_hint(failure_class: str, retry_after, day: date) -> str:
    """What happens next to a video without a transcript, and what the operator can do."""
    later = f"after {retry_after:%Y-%m-%d %H:%M} UTC" if retry_after else "on a later day"
    rerun = f"chaffee ingest --from {day} --to {day}"
    hints = {
        "unavailable": "private, deleted, members-only, live or upcoming on YouTube: final, not retried; "
        f"once it is public, `{rerun}`",
        "too_new": f"its auto captions may not be out yet: the daily schedule retries it {later}",
        "blocked": "YouTube refused the request (throttled or IP-blocked): the daily schedule retries it "
        f"{later}; set CHAFFEE_YOUTUBE_PROXY if it keeps happening",
        "over_budget": f"the day's transcription budget is spent: retried {later}, or raise "
        "CHAFFEE_DAILY_BUDGET_USD",
        "engine_unavailable": "no speech-recognition engine could run (an API key or a local model is "
        f"missing): set one up (see `chaffee transcribe --help`), then `{rerun}`",
        "no_captions": f"no captions and no recognition ran: choose an engine with `{rerun} --asr-engine …`",
    }
    return hints.get(failure_class, f"see the message above; after fixing it, `{rerun}` (retried {later})")


def _print_summary(first: date, last: date) -> None:
    from chaffee_assets.cli.terminal import printable
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
        failed = conn.execute(
            """
            SELECT video_id, title, published_date, failure_class, failure_message, retry_after
            FROM video_status WHERE failure_class IS NOT NULL AND published_date BETWEEN %s AND %s
            ORDER BY published_date, video_id
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
    for video_id, title, day, failure_class, message, retry_after in failed:
        print(f"    {printable(video_id)} ({day}, {printable(title or 'untitled')[:60]}): {failure_class}: "
              f"{printable(message or 'no message')[:200]}")  # fmt: skip
        print(f"      → {failure_hint(failure_class, retry_after, day)}")
    print(f"  segments:     {segments[0]} in {segments[1]} video(s)")
