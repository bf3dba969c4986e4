"""Asset checks: declared as `check_specs` on the assets and evaluated inside them, per day.

They run with every materialisation (so the day's rows are what is checked), one result per day of
the run (see `per_day.py`), and the blocking ones stop a bad result from flowing downstream in the
same run. Metadata holds counts, plus a Markdown list of what was flagged when anything was.
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import dagster as dg
from psycopg import Connection

from chaffee_assets.defs.partitions import videos_daily_partition
from chaffee_assets.golden_queries import GoldenQuery
from chaffee_assets.ingest.cues import Cue
from chaffee_assets.ingest.transcript_quality import transcript_issues
from chaffee_assets.retrieval.embedder import Embedder
from chaffee_assets.transcription import registry
from chaffee_assets.transcription.budget import spent_today

GOLDEN_TOP_K = 5

TRANSCRIPTS_CHECKS = [
    dg.AssetCheckSpec(
        "transcripts_every_video_accounted_check",
        asset="transcripts",
        partitions_def=videos_daily_partition,
        blocking=True,
        description="Every video of the partition has a current transcript or a recorded failure class.",
    ),
    dg.AssetCheckSpec(
        "transcripts_coverage_check",
        asset="transcripts",
        partitions_def=videos_daily_partition,
        description="Each transcript reaches at least half of its video's duration and no cue starts "
        "before the previous one.",
    ),
    dg.AssetCheckSpec(
        "transcripts_hallucination_check",
        asset="transcripts",
        partitions_def=videos_daily_partition,
        description="Speech-recognition transcripts have no long repeated phrase runs or windows that "
        "compress absurdly well (Whisper repetition loops).",
    ),
    dg.AssetCheckSpec(
        "transcripts_spend_within_budget_check",
        asset="transcripts",
        # Not per partition: the budget is per UTC day of spending, whatever days a run transcribes.
        description="Today's (UTC) speech-recognition spend in the ledger is within the daily budget "
        "(evaluated once per run, for the day of the run).",
    ),
]

SEGMENTS_CHECKS = [
    dg.AssetCheckSpec(
        "segments_no_duplicates_check",
        asset="segments",
        partitions_def=videos_daily_partition,
        blocking=True,
        description="No video has two segments with the same start and text, and every video with a "
        "transcript has segments cut from that transcript.",
    ),
]

EMBEDDINGS_CHECKS = [
    dg.AssetCheckSpec(
        "segment_embeddings_complete_check",
        asset="segment_embeddings",
        partitions_def=videos_daily_partition,
        blocking=True,
        description="Every segment of the partition has a vector of the right dimension under the "
        "configured (default) embedding model.",
    ),
    dg.AssetCheckSpec(
        "segment_embeddings_golden_queries_check",
        asset="segment_embeddings",
        partitions_def=videos_daily_partition,
        description=f"The golden questions answered by the day's videos find their video in the top "
        f"{GOLDEN_TOP_K} of the whole library. Questions come from CHAFFEE_GOLDEN_QUERIES, else the "
        "library folder's golden_queries.jsonl; a day with none of their videos, or a deployment with no "
        "such file, is skipped (the run log and the materialisation's `golden_queries` say why).",
    ),
]


def listing(items: Sequence[str], limit: int = 20) -> dg.MetadataValue:
    """Flagged items as a Markdown list the UI renders, or the plain word `none`."""
    if not items:
        return dg.MetadataValue.text("none")
    shown = [f"- {item}" for item in items[:limit]]
    if len(items) > limit:
        shown.append(f"- … {len(items) - limit} more")
    return dg.MetadataValue.md("\n".join(shown))


def every_video_accounted(conn: Connection, video_ids: list[str]) -> dg.AssetCheckResult:
    missing = [
        row[0]
        for row in conn.execute(
            """
            SELECT v.video_id FROM unnest(%s::text[]) AS v(video_id)
            WHERE NOT EXISTS (SELECT 1 FROM transcripts t WHERE t.video_id = v.video_id AND t.is_current)
              AND NOT EXISTS (SELECT 1 FROM transcript_attempts a WHERE a.video_id = v.video_id)
            """,
            (video_ids,),
        )
    ]
    return dg.AssetCheckResult(
        check_name="transcripts_every_video_accounted_check",
        passed=not missing,
        metadata={
            "videos": len(video_ids),
            "unaccounted": len(missing),
            "unaccounted_ids": listing(missing),
        },
    )


def _current_transcripts(conn: Connection, video_ids: list[str]):
    return conn.execute(
        """
        SELECT t.video_id, t.source, t.cues, v.duration_s
        FROM transcripts t JOIN videos v USING (video_id)
        WHERE t.is_current AND t.video_id = ANY(%s)
        """,
        (video_ids,),
    ).fetchall()


def transcript_quality(conn: Connection, video_ids: list[str]) -> list[dg.AssetCheckResult]:
    coverage_problems: list[str] = []
    loop_problems: list[str] = []
    rows = _current_transcripts(conn, video_ids)
    for video_id, source, cue_dicts, duration in rows:
        cues = [Cue(float(c["start"]), float(c["end"]), c["text"]) for c in cue_dicts]
        is_asr = registry.is_speech_recognition(source)
        for issue in transcript_issues(cues, duration, check_loops=is_asr):
            target = loop_problems if issue.kind in ("repetition", "compression") else coverage_problems
            target.append(f"{video_id} ({source}): {issue.detail}")
    return [
        dg.AssetCheckResult(
            check_name="transcripts_coverage_check",
            passed=not coverage_problems,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "transcripts": len(rows),
                "flagged": len(coverage_problems),
                "details": listing(coverage_problems),
            },
        ),
        dg.AssetCheckResult(
            check_name="transcripts_hallucination_check",
            passed=not loop_problems,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"flagged": len(loop_problems), "details": listing(loop_problems)},
        ),
    ]


def spend_within_budget(
    conn: Connection, budget_usd: float, now: datetime | None = None
) -> dg.AssetCheckResult:
    now = now or datetime.now(UTC)
    spent = spent_today(conn, now)
    return dg.AssetCheckResult(
        check_name="transcripts_spend_within_budget_check",
        passed=spent <= budget_usd + 1e-9,
        metadata={
            "spend_day_utc": now.astimezone(UTC).date().isoformat(),
            "spent_today_usd": round(spent, 4),
            "daily_budget_usd": budget_usd,
        },
    )


def no_duplicate_segments(conn: Connection, video_ids: list[str]) -> dg.AssetCheckResult:
    duplicates = conn.execute(
        """
        SELECT video_id, start_s, count(*) FROM segments
        WHERE video_id = ANY(%s) GROUP BY video_id, start_s, text HAVING count(*) > 1
        """,
        (video_ids,),
    ).fetchall()
    stale = [
        row[0]
        for row in conn.execute(
            """
            SELECT t.video_id FROM transcripts t
            WHERE t.is_current AND t.video_id = ANY(%s)
              AND NOT EXISTS (SELECT 1 FROM segments s WHERE s.transcript_id = t.transcript_id)
              AND jsonb_array_length(t.cues) > 0
            """,
            (video_ids,),
        )
    ]
    return dg.AssetCheckResult(
        check_name="segments_no_duplicates_check",
        passed=not duplicates and not stale,
        metadata={
            "duplicate_groups": len(duplicates),
            "videos_without_current_segments": listing(stale),
        },
    )


def embeddings_complete(
    conn: Connection, video_ids: list[str], model: str, dimensions: int
) -> dg.AssetCheckResult:
    missing, wrong_dims, total = conn.execute(
        """
        SELECT count(*) FILTER (WHERE e.segment_id IS NULL),
               count(*) FILTER (WHERE e.segment_id IS NOT NULL AND vector_dims(e.embedding) <> %s),
               count(*)
        FROM segments s
        LEFT JOIN segment_embeddings e ON e.segment_id = s.segment_id AND e.model = %s
        WHERE s.video_id = ANY(%s)
        """,
        (dimensions, model, video_ids),
    ).fetchone()
    return dg.AssetCheckResult(
        check_name="segment_embeddings_complete_check",
        passed=missing == 0 and wrong_dims == 0,
        metadata={
            "model": model,
            "segments": total,
            "missing": missing,
            "wrong_dimension": wrong_dims,
        },
    )


def golden_queries(
    conn: Connection,
    embedder: Embedder,
    queries: Sequence[GoldenQuery],
    video_ids: Sequence[str],
    k: int = GOLDEN_TOP_K,
) -> dg.AssetCheckResult | None:
    """The questions answered by `video_ids` (those embedded under the model) asked of the whole library.

    None when none of them is answered by these videos: there is nothing to check on this day.
    """
    from chaffee_assets.search import search

    embedded = {
        row[0]
        for row in conn.execute(
            "SELECT DISTINCT s.video_id FROM segments s JOIN segment_embeddings e USING (segment_id) "
            "WHERE s.video_id = ANY(%s) AND e.model = %s",
            (list(video_ids), embedder.model_name),
        )
    }
    applicable = [q for q in queries if q.video_id in embedded]
    if not applicable:
        return None
    misses: list[str] = []
    moments_found = 0
    for query in applicable:
        hits = search(query.question, k=k, conn=conn, embedder=embedder, model=embedder.model_name)
        ranks = [rank for rank, hit in enumerate(hits, start=1) if hit.video_id == query.video_id]
        if not ranks:
            misses.append(f"{query.question} → expected {query.video_id}")
            continue
        if query.start_s is not None and query.end_s is not None:
            moments_found += any(
                hit.video_id == query.video_id and hit.start_s < query.end_s and hit.end_s > query.start_s
                for hit in hits
            )
    return dg.AssetCheckResult(
        check_name="segment_embeddings_golden_queries_check",
        passed=not misses,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "questions": len(applicable),
            "video_found": len(applicable) - len(misses),
            "moment_found": moments_found,
            "missed": listing(misses),
        },
    )
