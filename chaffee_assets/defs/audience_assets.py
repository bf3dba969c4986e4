"""What the audience asks: a daily summary of the questions asked on the search page and API, and the
question log's retention, run every night for the day before."""

from datetime import UTC, date, datetime

import dagster as dg

from chaffee_assets.audience.summary import (
    QuestionGroup,
    asked_on,
    enforce_retention,
    group_questions,
    write_summary,
)
from chaffee_assets.defs.partitions import ASSET_GROUP, questions_daily_partition
from chaffee_assets.defs.resources import EmbeddingModelResource, WarehouseResource
from chaffee_assets.settings import settings

TOP_SHOWN = 10


def _cell(text: str) -> str:
    """Text for a Markdown table cell: a visitor's `|` must not open another column."""
    return text.replace("|", "\\|").replace("\n", " ")


def _table(groups: list[QuestionGroup]) -> dg.MetadataValue:
    if not groups:
        return dg.MetadataValue.text("none")
    lines = ["| asked | unanswered | question | also asked as |", "|---:|---:|---|---|"]
    for group in groups[:TOP_SHOWN]:
        others = "; ".join(v for v in group.variants if v != group.question)[:200]
        cells = [str(group.times_asked), str(group.times_unanswered), _cell(group.question), _cell(others)]
        lines.append(f"| {' | '.join(cells)} |")
    return dg.MetadataValue.md("\n".join(lines))


@dg.asset(
    partitions_def=questions_daily_partition,
    # The code location's one group: with two, the UI's global lineage opens as collapsed boxes.
    group_name=ASSET_GROUP,
    kinds={"postgres"},
    description="The day's (UTC) questions from the search page and API: near-duplicates grouped by the "
    "product's embeddings, most asked first, and those nothing in the library answered, with counts "
    "(table `question_summaries`, view `asked_questions_daily`). Also deletes questions older than "
    "CHAFFEE_QUESTION_LOG_DAYS.",
)
def asked_questions_summary(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, embedding_model: EmbeddingModelResource
) -> dg.MaterializeResult:
    day = date.fromisoformat(context.partition_key)
    with warehouse.connect() as conn:
        asked = asked_on(conn, day)
        groups = group_questions(asked, embedding_model.get()) if asked else []
        write_summary(conn, day, groups)
        keep_days = settings().question_log_days
        deleted = enforce_retention(conn, datetime.now(UTC).date(), keep_days)
    if deleted:
        context.log.info(f"deleted {deleted} questions older than {keep_days} days")
    unanswered = sorted(
        (g for g in groups if g.times_unanswered), key=lambda g: (-g.times_unanswered, g.question)
    )
    return dg.MaterializeResult(
        metadata={
            "questions": dg.MetadataValue.int(sum(a.times_asked for a in asked)),
            "distinct_questions": dg.MetadataValue.int(len(groups)),
            "unanswered_questions": dg.MetadataValue.int(sum(g.times_unanswered for g in groups)),
            "most_asked": _table(groups),
            "unanswered": _table(unanswered),
            "deleted_past_retention": dg.MetadataValue.int(deleted),
            "retention_days": dg.MetadataValue.int(keep_days),
        }
    )


questions_job = dg.define_asset_job(
    "questions_job",
    selection=dg.AssetSelection.assets(asked_questions_summary),
    description="Summarises a day's questions and enforces the question log's retention.",
)

questions_schedule = dg.build_schedule_from_partitioned_job(
    questions_job,
    hour_of_day=0,
    minute_of_hour=20,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every night at 00:20 UTC: the day before's questions summarised, old ones deleted.",
)
