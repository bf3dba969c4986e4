"""The daily partitions every asset shares, keyed by a video's publish date in UTC."""

from __future__ import annotations

from datetime import date, timedelta

import dagster as dg

from chaffee_assets.settings import settings

# One group for the four assets, so the UI's global lineage shows the chain videos → transcripts →
# segments → segment_embeddings as one box, not split into two collapsed groups.
ASSET_GROUP = "ask_dr_chaffee"

# CHAFFEE_START_DATE must be no later than the channel's first upload: a later start silently hides
# the oldest videos, while an earlier one only adds empty days. `chaffee ingest` warns when a video
# predates it. end_offset=1 makes today's partition exist, so a video published this morning can be
# materialised today instead of waiting for midnight UTC.
videos_daily_partition = dg.DailyPartitionsDefinition(
    start_date=settings().start_date.isoformat(), timezone="UTC", end_offset=1
)

# A whole-history backfill (~4,000 days, most of them empty) would be ~4,000 runs with one run per
# partition: hours of run start-up for little work. One run per 31 days makes it ~130 runs that each
# do real work, still small enough that a failed run retries a month, not the whole history.
MAX_PARTITIONS_PER_RUN = 31
videos_backfill_policy = dg.BackfillPolicy.multi_run(max_partitions_per_run=MAX_PARTITIONS_PER_RUN)


def partition_days(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> tuple[date, date]:
    """The first and last day (inclusive) of the partition or partition range being materialised."""
    window = context.partition_time_window
    return window.start.date(), (window.end - timedelta(days=1)).date()


def days_in(first: date, last: date) -> list[date]:
    return [first + timedelta(days=offset) for offset in range((last - first).days + 1)]


# The audience's questions, by the UTC day they were asked (not a publish day). The question log is
# newer than the channel: its calendar starts when the search page could first record a question.
QUESTIONS_START_DATE = "2026-01-01"
questions_daily_partition = dg.DailyPartitionsDefinition(start_date=QUESTIONS_START_DATE, timezone="UTC")
