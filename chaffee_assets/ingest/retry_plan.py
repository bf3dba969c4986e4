"""Which earlier days the daily schedule re-runs: videos still waiting for captions or a later try.

A video with no transcript keeps its last outcome in `transcript_attempts`. Two kinds of outcome
are worth a later run of the video's day:
- `too_new`: auto captions had not appeared yet; once `retry_after` (publication + the caption
  wait) has passed, a run either finds the captions or pays for speech recognition.
- `blocked`, `over_budget`, `engine_unavailable`, `error`: retried on a later UTC day than the last
  attempt, and not before `retry_after` when one was recorded (the budget's next midnight, an API's
  back-off). Never twice the same day: a throttled IP or a spent budget does not improve by
  asking again within hours, and a schedule ticking more often than daily must not loop on them.
`no_captions` leads straight to recognition in the same run and `unavailable` is final, so neither
is planned here.
"""

from collections.abc import Collection
from datetime import UTC, date, datetime, time

import psycopg

WAITING_FOR_CAPTIONS = ("too_new",)
RETRY_ON_A_LATER_DAY = ("blocked", "over_budget", "engine_unavailable", "error")

_DAYS_TO_RETRY = """
SELECT v.partition_date,
       array_agg(DISTINCT a.failure_class ORDER BY a.failure_class) AS classes
FROM transcript_attempts a
JOIN videos v USING (video_id)
WHERE v.partition_date IS NOT NULL
  AND v.partition_date >= %(earliest)s
  AND NOT (v.partition_date = ANY(%(exclude)s::date[]))
  AND (
        (a.failure_class = ANY(%(waiting)s::text[])
         AND coalesce(a.retry_after <= %(now)s, a.attempted_at < %(today_start)s))
     OR (a.failure_class = ANY(%(later_day)s::text[])
         AND a.attempted_at < %(today_start)s
         AND (a.retry_after IS NULL OR a.retry_after <= %(now)s))
  )
GROUP BY v.partition_date
ORDER BY v.partition_date
LIMIT %(limit)s
"""


def retry_reason(failure_classes: Collection[str]) -> str:
    """The `chaffee/reason` tag value of a retried day, e.g. `retry:blocked,too_new`."""
    return "retry:" + ",".join(sorted(failure_classes))


def partitions_to_retry(
    conn: psycopg.Connection,
    now: datetime,
    limit: int,
    *,
    exclude: Collection[date] = (),
    earliest: date = date.min,
) -> list[tuple[date, str]]:
    """Days (oldest first, at most `limit`) with a video due for another try, each with its reason.

    `now` must be timezone-aware; "today" is its UTC date. `exclude` holds days already being run
    for another reason (the newest days), so they do not use up the limit; `earliest` is the first
    day of the partition calendar.
    """
    if now.tzinfo is None:
        raise ValueError("partitions_to_retry needs a timezone-aware `now` (days are UTC)")
    if limit <= 0:
        return []
    today_start = datetime.combine(now.astimezone(UTC).date(), time.min, tzinfo=UTC)
    rows = conn.execute(
        _DAYS_TO_RETRY,
        {
            "now": now,
            "today_start": today_start,
            "earliest": earliest,
            "exclude": list(exclude),
            "waiting": list(WAITING_FOR_CAPTIONS),
            "later_day": list(RETRY_ON_A_LATER_DAY),
            "limit": limit,
        },
    ).fetchall()
    return [(day, retry_reason(classes)) for day, classes in rows]
