"""The alert sensors: Dagster's run-status sensors for `ingest_job` (failed, canceled, and the success
that clears them, blocking checks included) and one periodic sensor for the conditions a run does not
announce (budgets, waiting videos, the feed, freshness). They run in the daemon like the schedule.

With no alert channel configured (docs/operations.md, "Alerts") every one of them skips and says so.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import dagster as dg
import psycopg

from chaffee_assets.alerts import conditions
from chaffee_assets.alerts.channels import Alert, Channel, configured_channels, send
from chaffee_assets.alerts.state import Condition, forget, raised_keys, reconcile, remember
from chaffee_assets.defs.partitions import videos_daily_partition
from chaffee_assets.defs.resources import WarehouseResource
from chaffee_assets.defs.schedules import ingest_job
from chaffee_assets.settings import settings

ALERTS_OFF = (
    "alerts are off: no CHAFFEE_ALERT_WEBHOOK_URL or CHAFFEE_ALERT_SMTP_HOST + CHAFFEE_ALERT_EMAIL_TO"
)

ChannelsFrom = Callable[[], list[Channel]]


def _channels_from_settings() -> list[Channel]:
    return configured_channels(settings())


def _deliverer(context: dg.SensorEvaluationContext, channels: list[Channel]) -> Callable[[Alert], bool]:
    def deliver(alert: Alert) -> bool:
        delivered = False
        for delivery in send(alert, channels):
            if delivery.error:
                context.log.warning(f"alert '{alert.title}' not sent by {delivery.channel}: {delivery.error}")
            else:
                delivered = True
                context.log.info(f"alert '{alert.title}' sent by {delivery.channel} to {delivery.where}")
        return delivered

    return deliver


def _raise_once(conn: psycopg.Connection, condition: Condition, deliver: Callable[[Alert], bool]) -> str:
    if raised_keys(conn, [condition.kind]).get(condition.key) is not None:
        conn.execute("UPDATE alert_state SET last_seen_at = now() WHERE alert_key = %s", (condition.key,))
        return f"{condition.key}: already alerted"
    if deliver(condition.alert):
        remember(conn, condition)
        return f"{condition.key}: alerted"
    return f"{condition.key}: no channel took the alert"


def build_alert_sensors(
    channels_from: ChannelsFrom = _channels_from_settings,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> list[dg.SensorDefinition]:
    """The four alert sensors, with where alerts go and the clock injected (tests pass their own)."""

    def _on_run_end(status: str) -> Callable[..., dg.SkipReason]:
        def handle(context: dg.RunStatusSensorContext, warehouse: WarehouseResource) -> dg.SkipReason:
            channels = channels_from()
            if not channels:
                return dg.SkipReason(ALERTS_OFF)
            deliver = _deliverer(context, channels)
            ui_url = settings().dagster_ui_url
            run = context.dagster_run
            found = [conditions.run_failed_condition(context.instance, run, status, ui_url)]
            found += conditions.failed_check_conditions(context.instance, run, ui_url)
            with warehouse.connect() as conn:
                outcomes = [_raise_once(conn, condition, deliver) for condition in found]
            return dg.SkipReason("; ".join(outcomes))

        return handle

    @dg.run_failure_sensor(
        name="ingest_failure_alert_sensor",
        monitored_jobs=[ingest_job],
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=30,
        description="Alerts when an ingest_job run fails: the day, the failed step and its error's first "
        "line, and each blocking check it failed on a day. Once per day until a run of it succeeds.",
    )
    def ingest_failure_alert_sensor(
        context: dg.RunFailureSensorContext, warehouse: WarehouseResource
    ) -> dg.SkipReason:
        return _on_run_end("failed")(context, warehouse)

    @dg.run_status_sensor(
        name="ingest_canceled_alert_sensor",
        run_status=dg.DagsterRunStatus.CANCELED,
        monitored_jobs=[ingest_job],
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=30,
        description="Alerts when an ingest_job run is canceled, once per day until a run of it succeeds.",
    )
    def ingest_canceled_alert_sensor(
        context: dg.RunStatusSensorContext, warehouse: WarehouseResource
    ) -> dg.SkipReason:
        return _on_run_end("canceled")(context, warehouse)

    @dg.run_status_sensor(
        name="ingest_recovered_alert_sensor",
        run_status=dg.DagsterRunStatus.SUCCESS,
        monitored_jobs=[ingest_job],
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=30,
        description="Says 'cleared' for a day's failed run, and for each blocking check, once a later "
        "ingest_job run of that day succeeds.",
    )
    def ingest_recovered_alert_sensor(
        context: dg.RunStatusSensorContext, warehouse: WarehouseResource
    ) -> dg.SkipReason:
        channels = channels_from()
        if not channels:
            return dg.SkipReason(ALERTS_OFF)
        deliver = _deliverer(context, channels)
        run = context.dagster_run
        day = conditions.day_of_run(run)
        candidates = {f"{conditions.RUN_KIND}:{run.job_name}:{day}"}
        candidates |= set(conditions.passed_check_keys(context.instance, run.run_id))
        outcomes = []
        with warehouse.connect() as conn:
            raised = raised_keys(conn, [conditions.RUN_KIND, conditions.CHECK_KIND])
            for key in sorted(candidates & set(raised)):
                cleared = Alert(
                    title=raised[key],
                    lines=[f"Run of {day} succeeded."],
                    links=[conditions.run_link(settings().dagster_ui_url, run.run_id)],
                    cleared=True,
                )
                if deliver(cleared):
                    forget(conn, key)
                    outcomes.append(f"{key}: cleared")
        return dg.SkipReason("; ".join(outcomes) or f"nothing had failed for {day}")

    @dg.sensor(
        name="pipeline_watch_sensor",
        minimum_interval_seconds=settings().alert_interval_s,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Every few minutes (CHAFFEE_ALERT_INTERVAL_S): alerts once when the day's transcription "
        "or answer budget is spent, videos wait too long, the feed sensor fails tick after tick, or "
        "yesterday is not in the warehouse by CHAFFEE_ALERT_FRESH_BY; says when each has cleared.",
    )
    def pipeline_watch_sensor(
        context: dg.SensorEvaluationContext, warehouse: WarehouseResource
    ) -> dg.SkipReason:
        channels = channels_from()
        if not channels:
            return dg.SkipReason(ALERTS_OFF)
        config = settings()
        with warehouse.connect() as conn:
            current = conditions.periodic_conditions(
                context.instance,
                conn,
                clock(),
                config=config,
                first_day=videos_daily_partition.start.date(),
            )
            outcome = reconcile(
                conn,
                conditions.PERIODIC_KINDS,
                current,
                _deliverer(context, channels),
                conditions.cleared_alert,
            )
        parts = [f"holding: {conditions.summarize(current)}"]
        if outcome.raised:
            parts.append(f"alerted: {', '.join(outcome.raised)}")
        if outcome.cleared:
            parts.append(f"cleared: {', '.join(outcome.cleared)}")
        if outcome.undelivered:
            parts.append(f"not delivered (retried next tick): {', '.join(outcome.undelivered)}")
        return dg.SkipReason("; ".join(parts))

    return [
        ingest_failure_alert_sensor,
        ingest_canceled_alert_sensor,
        ingest_recovered_alert_sensor,
        pipeline_watch_sensor,
    ]


alert_sensors = build_alert_sensors()
