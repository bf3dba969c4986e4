"""Tell a Dagster instance which daily partitions a moved (restored) warehouse already holds.

A warehouse restored on a new server arrives without the Dagster history that made it, so the
instance there would show every day as missing, and a backfill of missing days would run them all
again. This reads what the warehouse holds and records, per asset and day, a runless
materialisation (as an external system reports one), written to the event log in batches, so
the instance shows those days as materialised. Re-running such a day anyway costs nothing with
OpenAI: a video with a current transcript is kept, not transcribed again.

A day counts for an asset only when the warehouse proves the asset's work for it done: every video
of the day has a transcript or a recorded outcome (`transcripts`), every transcribed video has its
segments (`segments`), every segment its vector for the model (`segment_embeddings`), every
video a speaker labelling that is not stale (`speaker_labels`, where "unknown" is an outcome). Days that
fall short stay missing, so a backfill finishes them. Days without videos are not reported here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import dagster as dg
import psycopg

from chaffee_assets.defs.runless import record_runless_materializations

REPORTER = "chaffee db restore"

# Each asset's days whose work the warehouse holds complete (see the module's docstring).
_HELD_DAYS_SQL = """
WITH day_videos AS (
    SELECT v.partition_date AS day, v.video_id,
           t.transcript_id AS current_transcript,
           t.transcript_id IS NOT NULL OR EXISTS (SELECT 1 FROM transcript_attempts a WHERE a.video_id = v.video_id)
               AS transcribed,
           t.transcript_id IS NULL OR EXISTS (SELECT 1 FROM segments s WHERE s.transcript_id = t.transcript_id)
               AS segmented,
           NOT EXISTS (SELECT 1 FROM segments s
                       WHERE s.transcript_id = t.transcript_id
                         AND NOT EXISTS (SELECT 1 FROM segment_embeddings e
                                         WHERE e.segment_id = s.segment_id AND e.model = %(model)s))
               AS embedded,
           EXISTS (SELECT 1 FROM speaker_labellings l WHERE l.video_id = v.video_id AND l.status <> 'stale')
               AS labelled
    FROM videos v
    LEFT JOIN transcripts t ON t.video_id = v.video_id AND t.is_current
    WHERE v.partition_date IS NOT NULL
)
SELECT day, bool_and(transcribed), bool_and(transcribed AND segmented),
       bool_and(transcribed AND segmented AND embedded), bool_and(transcribed AND segmented AND labelled)
FROM day_videos GROUP BY day ORDER BY day
"""


def held_days(conn: psycopg.Connection, model: str) -> dict[str, list[date]]:
    """asset name -> the days the warehouse holds that asset's work for."""
    held: dict[str, list[date]] = {
        "videos": [],
        "transcripts": [],
        "segments": [],
        "segment_embeddings": [],
        "speaker_labels": [],
    }
    rows = conn.execute(_HELD_DAYS_SQL, {"model": model}).fetchall()
    for day, transcribed, segmented, embedded, labelled in rows:
        held["videos"].append(day)
        if transcribed:
            held["transcripts"].append(day)
        if segmented:
            held["segments"].append(day)
        if embedded:
            held["segment_embeddings"].append(day)
        if labelled:
            held["speaker_labels"].append(day)
    return held


@dataclass
class Reported:
    asset: str
    days_held: int
    already_materialised: int
    reported: int


def report_held_partitions(
    instance: dg.DagsterInstance, conn: psycopg.Connection, *, model: str, source: str = ""
) -> list[Reported]:
    """Record a runless materialisation for every held day the instance does not already show as
    materialised (so running it twice reports nothing the second time)."""
    from chaffee_assets.defs.partitions import videos_daily_partition

    valid_keys = set(videos_daily_partition.get_partition_keys(dynamic_partitions_store=instance))
    results = []
    for asset, days in held_days(conn, model).items():
        key = dg.AssetKey(asset)
        keys = [d.isoformat() for d in days if d.isoformat() in valid_keys]
        done = instance.get_materialized_partitions(key)
        new = [k for k in keys if k not in done]
        metadata = {"reported_by": dg.MetadataValue.text(REPORTER)}
        if source:
            metadata["moved_from"] = dg.MetadataValue.text(source)
        record_runless_materializations(instance, key, new, metadata=metadata)
        results.append(Reported(asset, len(keys), len(keys) - len(new), len(new)))
    return results
