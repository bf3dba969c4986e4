"""What is wrong right now, as alert conditions: a run that failed or was canceled, a blocking check that
failed on a day, a day's budget spent, videos waiting too long, the feed failing tick after tick, and
yesterday not in the warehouse by the time it should be.

Each function reads the warehouse or Dagster's instance and returns `Condition`s; the sensors in
`defs/alerts.py` decide when to evaluate them and `state.reconcile` decides what to send.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from urllib.parse import quote

import dagster as dg
import psycopg
from dagster._core.scheduler.instigation import InstigatorStatus, InstigatorType, TickStatus
from dagster._utils.error import SerializableErrorInfo

from chaffee_assets.alerts.channels import Alert
from chaffee_assets.alerts.state import Condition
from chaffee_assets.error_text import one_line
from chaffee_assets.settings import Settings

# A budget is spent once the ledger is within this share of it: the next call's reservation is
# refused before the ledger reaches the budget exactly.
EXHAUSTED_SHARE = 0.98
WAITING_CLASSES = ("too_new", "blocked", "no_captions")
FEED_SENSOR = "channel_feed_sensor"
FEED_UNAVAILABLE = "channel feed unavailable"
LISTED_IDS = 10

RUN_KIND = "run_failed"
CHECK_KIND = "check_failed"
BUDGET_KIND = "budget"
WAITING_KIND = "waiting"
FEED_KIND = "feed"
FRESHNESS_KIND = "freshness"
PERIODIC_KINDS = (BUDGET_KIND, WAITING_KIND, FEED_KIND, FRESHNESS_KIND)


# -- links to the Dagster UI ---------------------------------------------------------------------------


def run_link(ui_url: str, run_id: str) -> tuple[str, str]:
    return ("Run", f"{ui_url}/runs/{run_id}")


def asset_link(ui_url: str, asset: str, day: str | None = None) -> tuple[str, str]:
    where = f"{ui_url}/assets/{quote(asset)}"
    return ("Asset", f"{where}?view=partitions&partition={day}" if day else where)


def sensor_link(ui_url: str, name: str) -> tuple[str, str]:
    # `@` written as %40: an `@` after `host:port/…` reads as a URL password to the redaction.
    return ("Sensor", f"{ui_url}/locations/__repository__%40chaffee_assets/sensors/{name}")


def cleared_alert(key: str, summary: str) -> Alert:
    return Alert(title=summary, lines=["This no longer holds."], cleared=True)


# -- runs and checks (evaluated on a run's end) -------------------------------------------------------


def day_of_run(run: dg.DagsterRun) -> str:
    """The run's day, or its range of days, or 'no day' for an unpartitioned run."""
    tags = run.tags
    if "dagster/partition" in tags:
        return tags["dagster/partition"]
    start, end = (
        tags.get("dagster/asset_partition_range_start"),
        tags.get("dagster/asset_partition_range_end"),
    )
    if start and end:
        return start if start == end else f"{start}..{end}"
    return "no day"


def run_videos(instance: dg.DagsterInstance, run_id: str) -> int | None:
    """How many videos the run's `videos` step found (its days' `video_count`); None when it found none
    because it did not get that far."""
    total: int | None = None
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
        materialization = record.asset_materialization
        if materialization is None or materialization.asset_key != dg.AssetKey("videos"):
            continue
        value = materialization.metadata.get("video_count")
        count = getattr(value, "value", value)
        total = (total or 0) + (count if isinstance(count, int) else 0)
    return total


def error_line(error: SerializableErrorInfo) -> str:
    """The first line of what went wrong: the innermost cause (the user code's exception, not Dagster's
    wrapper), its class named without its module path, secrets hidden."""
    while error.cause is not None:
        error = error.cause
    line = one_line(error.message)
    head, sep, rest = line.partition(": ")
    if sep and re.fullmatch(r"[\w.]+", head):
        line = f"{head.rsplit('.', 1)[-1]}: {rest}"
    return line


def run_failed_condition(
    instance: dg.DagsterInstance, run: dg.DagsterRun, status: str, ui_url: str
) -> Condition:
    """A failed or canceled run: the day, the failed step(s) with their error's first line, the videos."""
    day = day_of_run(run)
    lines = [f"Day: {day}"]
    videos = run_videos(instance, run.run_id)
    if videos is not None:
        lines.append(f"Videos found: {videos}")
    for record in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE):
        event = record.dagster_event
        error = getattr(event.event_specific_data, "error", None) if event else None
        message = error_line(error) if error is not None else "no error recorded"
        lines.append(f"Failed step: {event.step_key if event else '?'}: {message}")
    if status == "canceled":
        lines.append("The run was canceled before it finished.")
    return Condition(
        key=f"{RUN_KIND}:{run.job_name}:{day}",
        kind=RUN_KIND,
        alert=Alert(
            title=f"{run.job_name} {status} for {day}",
            lines=lines,
            links=[run_link(ui_url, run.run_id)],
        ),
    )


def check_evaluations(instance: dg.DagsterInstance, run_id: str) -> list[dg.AssetCheckEvaluation]:
    found = []
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        event = record.dagster_event
        if event is not None and isinstance(event.event_specific_data, dg.AssetCheckEvaluation):
            found.append(event.event_specific_data)
    return found


def check_key(evaluation: dg.AssetCheckEvaluation) -> str:
    return f"{CHECK_KIND}:{evaluation.check_name}:{evaluation.partition or 'all days'}"


def failed_check_conditions(instance: dg.DagsterInstance, run: dg.DagsterRun, ui_url: str) -> list[Condition]:
    """The blocking checks the run failed, one condition per check and day."""
    conditions = []
    for evaluation in check_evaluations(instance, run.run_id):
        if evaluation.passed or not evaluation.blocking:
            continue
        day = evaluation.partition or "all days"
        details = [
            f"{name}: {getattr(value, 'value', value)}"
            for name, value in evaluation.metadata.items()
            if isinstance(getattr(value, "value", value), int | float | str)
        ]
        asset = evaluation.asset_key.to_user_string()
        conditions.append(
            Condition(
                key=check_key(evaluation),
                kind=CHECK_KIND,
                alert=Alert(
                    title=f"blocking check {evaluation.check_name} failed on {day}",
                    lines=[f"Asset: {asset}", f"Day: {day}", *details],
                    links=[asset_link(ui_url, asset, evaluation.partition), run_link(ui_url, run.run_id)],
                ),
            )
        )
    return conditions


def passed_check_keys(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    return [check_key(e) for e in check_evaluations(instance, run_id) if e.passed]


# -- the periodic conditions --------------------------------------------------------------------------


def _spent(conn: psycopg.Connection, table: str, day: date) -> float:
    row = conn.execute(
        f"SELECT coalesce(sum(usd), 0) FROM {table} WHERE (spent_at AT TIME ZONE 'UTC')::date = %s",  # noqa: S608
        (day,),
    ).fetchone()
    return float(row[0])


def budget_conditions(
    conn: psycopg.Connection,
    now: datetime,
    *,
    transcription_budget_usd: float,
    answer_budget_usd: float,
    ui_url: str,
) -> list[Condition]:
    """Today's (UTC) speech-recognition or answer budget spent (a budget of 0 is 'off', never alerted)."""
    day = now.astimezone(UTC).date()
    conditions = []
    asr_spent = _spent(conn, "asr_spend", day)
    refused = conn.execute(
        "SELECT count(*) FROM transcript_attempts WHERE failure_class = 'over_budget' "
        "AND (attempted_at AT TIME ZONE 'UTC')::date = %s",
        (day,),
    ).fetchone()[0]
    if transcription_budget_usd > 0 and (asr_spent >= EXHAUSTED_SHARE * transcription_budget_usd or refused):
        conditions.append(
            Condition(
                key=f"{BUDGET_KIND}:transcription:{day}",
                kind=BUDGET_KIND,
                alert=Alert(
                    title=f"the transcription budget for {day} is spent",
                    lines=[
                        f"Spent: ${asr_spent:.2f} of ${transcription_budget_usd:.2f} (CHAFFEE_DAILY_BUDGET_USD)",
                        f"Videos waiting for the next budget day: {refused}",
                    ],
                    links=[asset_link(ui_url, "transcripts", day.isoformat())],
                ),
            )
        )
    answers_spent = _spent(conn, "answer_spend", day)
    if answer_budget_usd > 0 and answers_spent >= EXHAUSTED_SHARE * answer_budget_usd:
        conditions.append(
            Condition(
                key=f"{BUDGET_KIND}:answers:{day}",
                kind=BUDGET_KIND,
                alert=Alert(
                    title=f"the answer budget for {day} is spent",
                    lines=[
                        f"Spent: ${answers_spent:.2f} of ${answer_budget_usd:.2f} (CHAFFEE_ANSWER_BUDGET_USD)",
                        "The search page shows moments without answers until 00:00 UTC.",
                    ],
                ),
            )
        )
    return conditions


def waiting_conditions(conn: psycopg.Connection, now: datetime, *, days: int, ui_url: str) -> list[Condition]:
    """Videos published more than `days` days ago still without a transcript, waiting (too new,
    blocked, no captions) — one condition for them all."""
    rows = conn.execute(
        """
        SELECT v.video_id, v.partition_date, a.failure_class
        FROM transcript_attempts a JOIN videos v USING (video_id)
        WHERE a.failure_class = ANY(%s) AND v.published_at < %s
          AND NOT EXISTS (SELECT 1 FROM transcripts t WHERE t.video_id = v.video_id AND t.is_current)
        ORDER BY v.published_at
        """,
        (list(WAITING_CLASSES), now - timedelta(days=days)),
    ).fetchall()
    if not rows:
        return []
    by_class: dict[str, int] = {}
    for _, _, failure_class in rows:
        by_class[failure_class] = by_class.get(failure_class, 0) + 1
    listed = [f"- {video_id} ({day}): {failure_class}" for video_id, day, failure_class in rows[:LISTED_IDS]]
    if len(rows) > LISTED_IDS:
        listed.append(f"- … {len(rows) - LISTED_IDS} more")
    oldest = rows[0][1]
    return [
        Condition(
            key=f"{WAITING_KIND}:{days}d",
            kind=WAITING_KIND,
            alert=Alert(
                title=f"{len(rows)} videos have waited more than {days} days for a transcript",
                lines=[
                    "By reason: " + ", ".join(f"{name} {count}" for name, count in sorted(by_class.items())),
                    f"Oldest day: {oldest}",
                    *listed,
                ],
                links=[asset_link(ui_url, "transcripts", oldest.isoformat() if oldest else None)],
            ),
        )
    ]


def feed_failed_ticks(instance: dg.DagsterInstance, limit: int) -> list[str]:
    """The reasons of the feed sensor's newest ticks while they failed, newest first (stops at the
    first tick that read the feed)."""
    states = [
        state
        for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR)
        if state.name == FEED_SENSOR
    ]
    if not states:
        return []
    # A code location that moved leaves its old sensor state behind: read one that is not stopped
    # (RUNNING when started in the UI, DECLARED_IN_CODE when running by its default status).
    state = next((s for s in states if s.status != InstigatorStatus.STOPPED), states[0])
    reasons: list[str] = []
    for tick in instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=limit):
        if tick.status == TickStatus.FAILURE:
            reasons.append(one_line(tick.error.message) if tick.error else "the tick failed")
        elif tick.status == TickStatus.SKIPPED and (tick.skip_reason or "").startswith(FEED_UNAVAILABLE):
            reasons.append(one_line(tick.skip_reason or ""))
        else:
            break
    return reasons


def feed_conditions(instance: dg.DagsterInstance, *, ticks: int, ui_url: str) -> list[Condition]:
    reasons = feed_failed_ticks(instance, ticks)
    if len(reasons) < ticks:
        return []
    return [
        Condition(
            key=f"{FEED_KIND}:failing",
            kind=FEED_KIND,
            alert=Alert(
                title=f"the channel feed sensor failed on its last {ticks} ticks",
                lines=[
                    f"Last reason: {reasons[0]}",
                    "New videos wait for the daily schedule until it reads the feed again.",
                ],
                links=[sensor_link(ui_url, FEED_SENSOR)],
            ),
        )
    ]


def freshness_conditions(
    instance: dg.DagsterInstance,
    conn: psycopg.Connection,
    now: datetime,
    *,
    fresh_by: str,
    first_day: date,
    ui_url: str,
    asset: str = "segment_embeddings",
) -> list[Condition]:
    """Yesterday's (UTC) partition of `asset` not materialised by `fresh_by` (HH:MM UTC) today."""
    now = now.astimezone(UTC)
    hour, minute = (int(part) for part in fresh_by.split(":"))
    if now.time() < time(hour, minute):
        return []
    yesterday = now.date() - timedelta(days=1)
    if yesterday < first_day:
        return []
    if yesterday.isoformat() in instance.get_materialized_partitions(dg.AssetKey(asset)):
        return []
    videos = conn.execute("SELECT count(*) FROM videos WHERE partition_date = %s", (yesterday,)).fetchone()[0]
    return [
        Condition(
            key=f"{FRESHNESS_KIND}:{yesterday}",
            kind=FRESHNESS_KIND,
            alert=Alert(
                title=f"{yesterday} is not in the warehouse at {fresh_by} UTC",
                lines=[
                    f"No materialisation of {asset} for {yesterday} yet.",
                    f"Videos of that day in the warehouse: {videos}",
                    "Has the daily schedule run? Is the daemon up?",
                ],
                links=[asset_link(ui_url, asset, yesterday.isoformat())],
            ),
        )
    ]


def periodic_conditions(
    instance: dg.DagsterInstance,
    conn: psycopg.Connection,
    now: datetime,
    *,
    config: Settings,
    first_day: date,
) -> list[Condition]:
    """Every periodic condition that holds now, with thresholds from the settings."""
    ui = config.dagster_ui_url
    found: list[Condition] = []
    found += budget_conditions(
        conn,
        now,
        transcription_budget_usd=config.daily_budget_usd,
        answer_budget_usd=config.answer_budget_usd,
        ui_url=ui,
    )
    found += waiting_conditions(conn, now, days=config.alert_waiting_days, ui_url=ui)
    found += feed_conditions(instance, ticks=config.alert_feed_failed_ticks, ui_url=ui)
    found += freshness_conditions(
        instance, conn, now, fresh_by=config.alert_fresh_by, first_day=first_day, ui_url=ui
    )
    return found


def summarize(conditions: Sequence[Condition]) -> str:
    return ", ".join(c.key for c in conditions) or "nothing wrong"
