"""Alerts on real runs and sensor ticks of the sample library, delivered to a webhook and an SMTP server
on 127.0.0.1: a failed run with its step and error, a blocking check failed on a day, budgets, waiting
videos, freshness; each once, then "cleared"; `chaffee alerts test` through every path."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from chaffee_assets.alerts.channels import Alert, EmailChannel, WebhookChannel, alerts_off_notice
from chaffee_assets.definitions import INGEST_ASSETS, build_resources
from chaffee_assets.defs.alerts import ALERTS_OFF, build_alert_sensors
from chaffee_assets.defs.resources import VideoSourceResource, WarehouseResource
from chaffee_assets.defs.schedules import ingest_job
from chaffee_assets.ingest_runner import QUIET_CONSOLE
from chaffee_assets.settings import Settings, SettingsError
from chaffee_assets.warehouse import connect
from chaffee_assets_tests.alert_receivers import (
    MailReceiver,
    WebhookReceiver,
    smtp_receiver,
    webhook_receiver,
)
from chaffee_assets_tests.web_helpers import SAMPLE, chaffee_command, new_database

DAY = "2024-01-15"  # smplMeatDay's publish day
UI = "http://dagster.example:3000"
DROP_ONE_VIDEOS_VECTORS = """
CREATE FUNCTION drop_vectors() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM segments s WHERE s.segment_id = NEW.segment_id AND s.video_id = 'smplMeatDay') THEN
    RETURN NULL;
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER drop_vectors BEFORE INSERT ON segment_embeddings FOR EACH ROW EXECUTE FUNCTION drop_vectors();
"""


@pytest.fixture(scope="module")
def receivers() -> Iterator[tuple[WebhookReceiver, MailReceiver]]:
    with webhook_receiver() as hook, smtp_receiver() as mail:
        yield hook, mail


@pytest.fixture(scope="module")
def alert_env(receivers: tuple[WebhookReceiver, MailReceiver]) -> Iterator[dict[str, str]]:
    hook, mail = receivers
    env = {
        "CHAFFEE_ALERT_WEBHOOK_URL": hook.url,
        "CHAFFEE_ALERT_SMTP_HOST": mail.host,
        "CHAFFEE_ALERT_SMTP_PORT": str(mail.port),
        "CHAFFEE_ALERT_SMTP_STARTTLS": "off",
        "CHAFFEE_ALERT_EMAIL_TO": "ops@example.org",
        "CHAFFEE_ALERT_EMAIL_FROM": "pipeline@example.org",
        "CHAFFEE_DAGSTER_UI_URL": UI,
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        yield env


@pytest.fixture(scope="module")
def alert_url(embedded_admin_url: str) -> str:
    return new_database(embedded_admin_url, "alerts")


@pytest.fixture(scope="module")
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as test_instance:
        yield test_instance


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("alerts") / "library"
    shutil.copytree(SAMPLE, folder)
    return folder


def _run_day(instance: dg.DagsterInstance, url: str, library: Path) -> dg.ExecuteInProcessResult:
    resources = {
        **build_resources(VideoSourceResource(library_dir=str(library))),
        "warehouse": WarehouseResource(database_url=url),
    }
    job = dg.Definitions(assets=INGEST_ASSETS, jobs=[ingest_job], resources=resources).get_job_def(
        "ingest_job"
    )
    return job.execute_in_process(
        partition_key=DAY, instance=instance, run_config=QUIET_CONSOLE, raise_on_error=False
    )


def _run_event(instance: dg.DagsterInstance, run_id: str, kind: dg.DagsterEventType) -> dg.DagsterEvent:
    [record] = instance.all_logs(run_id, of_type=kind)
    assert record.dagster_event is not None
    return record.dagster_event


def _on_run_end(
    sensor: dg.SensorDefinition, instance: dg.DagsterInstance, url: str, run_id: str, kind
) -> str:
    run = instance.get_run_by_id(run_id)
    assert run is not None
    context = dg.build_run_status_sensor_context(
        sensor_name=sensor.name,
        dagster_event=_run_event(instance, run_id, kind),
        dagster_instance=instance,
        dagster_run=run,
        resources={"warehouse": WarehouseResource(database_url=url)},
    )
    if kind == dg.DagsterEventType.RUN_FAILURE:
        context = context.for_run_failure()
    result = sensor(context)
    assert isinstance(result, dg.SkipReason)
    return result.skip_message or ""


def test_failed_run_and_blocking_check_alert_once_then_clear(
    alert_env: dict[str, str],
    receivers: tuple[WebhookReceiver, MailReceiver],
    alert_url: str,
    instance: dg.DagsterInstance,
    library: Path,
) -> None:
    hook, mail = receivers
    hook.texts.clear()
    mail.messages.clear()
    failure_sensor, _, recovered_sensor, _ = build_alert_sensors()
    with connect(alert_url) as conn:
        conn.execute(DROP_ONE_VIDEOS_VECTORS)
        conn.commit()

    # A real run of the day whose embeddings step leaves one video without vectors: the blocking
    # check fails and so does the run.
    failed = _run_day(instance, alert_url, library)
    assert not failed.success
    said = _on_run_end(failure_sensor, instance, alert_url, failed.run_id, dg.DagsterEventType.RUN_FAILURE)
    assert "alerted" in said
    assert hook.titles() == [
        f"🚨 ingest_job failed for {DAY}",
        f"🚨 blocking check segment_embeddings_complete_check failed on {DAY}",
    ]
    run_alert, check_alert = hook.texts
    assert (
        "Failed step: segment_embeddings: DagsterAssetCheckFailedError: 1 blocking asset check failed"
        in run_alert
    )
    assert f"Run: {UI}/runs/{failed.run_id}" in run_alert
    assert "Videos found: 1" in run_alert
    assert (
        "missing:" in check_alert
        and f"{UI}/assets/segment_embeddings?view=partitions&partition={DAY}" in check_alert
    )
    assert mail.subjects() == [
        f"[Ask Dr Chaffee] ingest_job failed for {DAY}",
        f"[Ask Dr Chaffee] blocking check segment_embeddings_complete_check failed on {DAY}",
    ]
    assert mail.messages[0]["To"] == "ops@example.org"
    assert "hooksecret" not in "".join(hook.texts) + "".join(str(m) for m in mail.messages)

    # The same failure seen again (a daemon restarted before its cursor moved, or another failed run
    # of the day) is the same condition: no second alert.
    said = _on_run_end(failure_sensor, instance, alert_url, failed.run_id, dg.DagsterEventType.RUN_FAILURE)
    assert "already alerted" in said
    assert len(hook.texts) == 2 and len(mail.messages) == 2

    # Fixed and re-run: both conditions say they have cleared, once.
    with connect(alert_url) as conn:
        conn.execute("DROP TRIGGER drop_vectors ON segment_embeddings")
        conn.commit()
    fixed = _run_day(instance, alert_url, library)
    assert fixed.success
    _on_run_end(recovered_sensor, instance, alert_url, fixed.run_id, dg.DagsterEventType.RUN_SUCCESS)
    assert sorted(hook.titles()[2:]) == [
        f"✅ cleared blocking check segment_embeddings_complete_check failed on {DAY}",
        f"✅ cleared ingest_job failed for {DAY}",
    ]
    said = _on_run_end(recovered_sensor, instance, alert_url, fixed.run_id, dg.DagsterEventType.RUN_SUCCESS)
    assert said == f"nothing had failed for {DAY}" and len(hook.texts) == 4
    assert len(mail.messages) == 4


def _watch_tick(sensor: dg.SensorDefinition, instance: dg.DagsterInstance, url: str) -> str:
    context = dg.build_sensor_context(
        instance=instance, resources={"warehouse": WarehouseResource(database_url=url)}
    )
    result = sensor(context)
    assert isinstance(result, dg.SkipReason)
    return result.skip_message or ""


def test_watch_sensor_alerts_each_condition_once_and_clears_it(
    alert_env: dict[str, str],
    receivers: tuple[WebhookReceiver, MailReceiver],
    alert_url: str,
    instance: dg.DagsterInstance,
    library: Path,
) -> None:
    hook, _ = receivers
    now = datetime(2024, 1, 20, 10, 0, tzinfo=UTC)
    *_, watch = build_alert_sensors(clock=lambda: now)
    with connect(alert_url) as conn:
        # The day's speech-recognition budget ($5.00 by default) spent, and a video of the 15th
        # still waiting for captions five days later.
        conn.execute(
            "INSERT INTO asr_spend (spent_at, video_id, engine, model, audio_seconds, usd) "
            "VALUES (%s, NULL, 'openai', 'whisper-1', 3000, 5.00)",
            (now,),
        )
        conn.execute(
            "INSERT INTO transcript_attempts (video_id, failure_class, message) "
            "SELECT video_id, 'too_new', 'auto captions not yet published' FROM videos WHERE video_id = 'smplMeatDay'"
        )
        conn.execute("UPDATE transcripts SET is_current = false WHERE video_id = 'smplMeatDay'")
        conn.commit()
    hook.texts.clear()

    said = _watch_tick(watch, instance, alert_url)
    titles = hook.titles()
    assert "🚨 the transcription budget for 2024-01-20 is spent" in titles
    assert "🚨 1 videos have waited more than 3 days for a transcript" in titles
    # Yesterday (the 19th) was never materialised and it is past 09:00 UTC.
    assert "🚨 2024-01-19 is not in the warehouse at 09:00 UTC" in titles
    assert len(titles) == 3, said
    waiting = next(t for t in hook.texts if "waited" in t)
    assert "smplMeatDay (2024-01-15): too_new" in waiting and "By reason: too_new 1" in waiting

    # Nothing changed: nothing sent.
    _watch_tick(watch, instance, alert_url)
    assert len(hook.texts) == 3

    # All three fixed: each says it has cleared, once.
    with connect(alert_url) as conn:
        conn.execute("DELETE FROM asr_spend")
        conn.execute("DELETE FROM transcript_attempts WHERE video_id = 'smplMeatDay'")
        conn.execute("UPDATE transcripts SET is_current = true WHERE video_id = 'smplMeatDay'")
        conn.commit()
    instance.report_runless_asset_event(
        dg.AssetMaterialization(asset_key="segment_embeddings", partition="2024-01-19")
    )
    said = _watch_tick(watch, instance, alert_url)
    assert sorted(hook.titles()[3:]) == sorted(f"✅ cleared {t[2:]}" for t in titles), said
    _watch_tick(watch, instance, alert_url)
    assert len(hook.texts) == 6


def test_no_channel_means_no_alerts_and_says_so(alert_url: str, instance: dg.DagsterInstance) -> None:
    *_, watch = build_alert_sensors(channels_from=lambda: [])
    assert _watch_tick(watch, instance, alert_url) == ALERTS_OFF


def _alerts_test(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CHAFFEE_ALERT_")}
    return subprocess.run(
        [chaffee_command(), "alerts", "test"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_alerts_test_command_sends_through_every_path(
    alert_env: dict[str, str], receivers: tuple[WebhookReceiver, MailReceiver]
) -> None:
    hook, mail = receivers
    hook.texts.clear()
    mail.messages.clear()
    done = _alerts_test(alert_env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"webhook: sent to {hook.url.split('/')[2]}",
        "e-mail: sent to ops@example.org via 127.0.0.1:" + alert_env["CHAFFEE_ALERT_SMTP_PORT"],
    ]
    assert hook.titles() == ["🚨 test message from Ask Dr Chaffee"]
    assert mail.subjects() == ["[Ask Dr Chaffee] test message from Ask Dr Chaffee"]

    # A webhook that refuses: said in one line, the URL's secret path never shown, e-mail still sent.
    hook.status = 500
    try:
        done = _alerts_test(alert_env)
    finally:
        hook.status = 200
    assert done.returncode == 1
    assert f"webhook: FAILED (the webhook at {hook.url.split('/')[2]} answered HTTP 500)" in done.stdout
    assert "hooksecret" not in done.stdout + done.stderr
    assert len(mail.messages) == 2

    nothing = _alerts_test({})
    assert nothing.returncode == 2 and nothing.stderr.startswith("error: no alert channel is configured")


def test_the_alerts_off_line_goes_once_a_channel_is_configured() -> None:
    assert alerts_off_notice(Settings.from_env({})).startswith("alerts: off (set CHAFFEE_ALERT_WEBHOOK_URL")
    assert (
        alerts_off_notice(Settings.from_env({"CHAFFEE_ALERT_WEBHOOK_URL": "https://hooks.example/x"})) is None
    )
    # E-mail needs a server and someone to send to.
    assert alerts_off_notice(Settings.from_env({"CHAFFEE_ALERT_SMTP_HOST": "smtp.example.org"})) is not None
    assert (
        alerts_off_notice(
            Settings.from_env(
                {"CHAFFEE_ALERT_SMTP_HOST": "smtp.example.org", "CHAFFEE_ALERT_EMAIL_TO": "a@b.org"}
            )
        )
        is None
    )


def test_a_malformed_webhook_url_is_refused_without_repeating_it() -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({"CHAFFEE_ALERT_WEBHOOK_URL": "hooks.slack.com/services/T/B/hooksecret"})
    assert str(refused.value) == "CHAFFEE_ALERT_WEBHOOK_URL='***' is not an http:// or https:// URL"


def test_channel_reprs_hide_credentials() -> None:
    assert "hooksecret" not in repr(WebhookChannel("https://hooks.slack.com/services/T/B/hooksecret"))
    email = EmailChannel("smtp.example.org", 587, "a@example.org", ("b@example.org",), "user", "pw-secret")
    assert "pw-secret" not in repr(email)


def test_feed_sensor_failing_on_consecutive_daemon_ticks_alerts_once(
    receivers: tuple[WebhookReceiver, MailReceiver], alert_url: str, tmp_path: Path
) -> None:
    """The code location as the daemon runs it (a gRPC code server), its sensors ticked by the daemon's
    own sensor loop: the feed sensor cannot reach the feed (a proxy on a closed port), tick after tick,
    and the watch sensor, reading those ticks, alerts once."""
    import logging

    from dagster._core.test_utils import create_test_daemon_workspace_context, instance_for_test
    from dagster._core.workspace.load_target import ModuleTarget
    from dagster._daemon.sensor import execute_sensor_iteration

    hook, _ = receivers
    hook.texts.clear()
    env = {
        "DATABASE_URL": alert_url,
        "CHAFFEE_ALERT_WEBHOOK_URL": hook.url,
        "CHAFFEE_YOUTUBE_PROXY": "http://127.0.0.1:9",  # nothing listens on the discard port
        "CHAFFEE_FEED_TIMEOUT_S": "2",
        "CHAFFEE_FEED_SENSOR_INTERVAL_S": "1",
        "CHAFFEE_ALERT_INTERVAL_S": "1",
        "CHAFFEE_ALERT_FEED_FAILED_TICKS": "2",
        # Before 00:00 UTC nothing is due, so only the feed's condition can hold whatever the hour.
        "CHAFFEE_ALERT_FRESH_BY": "23:59",
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        patch.delenv("CHAFFEE_LIBRARY_DIR", raising=False)
        target = ModuleTarget(
            module_name="chaffee_assets.definitions",
            attribute="defs",
            working_directory=str(Path(__file__).resolve().parent.parent),
            location_name="chaffee_assets",
        )
        with (
            instance_for_test(temp_dir=str(tmp_path)) as instance,
            create_test_daemon_workspace_context(target, instance) as workspace,
        ):
            logger = logging.getLogger("sensor-daemon")
            feed_alerts: list[str] = []
            for _ in range(8):
                list(execute_sensor_iteration(workspace, logger, None, None))
                if feed_alerts := [t for t in hook.titles() if "feed sensor" in t]:
                    break
                time.sleep(1.1)
            # Another tick of both: the condition still holds, and is not alerted again.
            time.sleep(1.1)
            list(execute_sensor_iteration(workspace, logger, None, None))
            feed_alerts = [t for t in hook.titles() if "feed sensor" in t]
            states = [s for s in instance.all_instigator_state() if s.name == "channel_feed_sensor"]
            feed_ticks = instance.get_ticks(states[0].instigator_origin_id, states[0].selector_id)
    assert len(feed_ticks) >= 3
    assert all((t.skip_reason or "").startswith("channel feed unavailable") for t in feed_ticks)
    assert feed_alerts == ["🚨 the channel feed sensor failed on its last 2 ticks"]
    text = next(t for t in hook.texts if "feed sensor" in t)
    assert "/locations/__repository__%40chaffee_assets/sensors/channel_feed_sensor" in text


def test_a_canceled_run_alerts_with_its_day(
    alert_env: dict[str, str], receivers: tuple[WebhookReceiver, MailReceiver], alert_url: str
) -> None:
    hook, _ = receivers
    hook.texts.clear()
    _, canceled_sensor, _, _ = build_alert_sensors()
    job = dg.Definitions(
        assets=INGEST_ASSETS, jobs=[ingest_job], resources=build_resources()
    ).resolve_job_def("ingest_job")
    with dg.instance_for_test() as instance:
        run = instance.create_run_for_job(job_def=job, tags={"dagster/partition": "2024-02-12"})
        instance.report_run_canceled(run)
        said = _on_run_end(canceled_sensor, instance, alert_url, run.run_id, dg.DagsterEventType.RUN_CANCELED)
    assert "alerted" in said
    [text] = hook.texts
    assert text.startswith("🚨 ingest_job canceled for 2024-02-12\nDay: 2024-02-12\n")
    assert "The run was canceled before it finished." in text and f"{UI}/runs/{run.run_id}" in text


def test_an_alert_never_carries_a_secret() -> None:
    alert = Alert(
        title="ingest_job failed for 2024-02-12",
        lines=[
            "Failed step: videos: OperationalError: connection to postgresql://chaffee:hunter2@db:5432/w failed",
            "Failed step: transcripts: AuthenticationError: Incorrect API key provided: sk-proj-abcdef123456",
        ],
        links=[("Run", "https://dagster.example/runs/1?token=tok3n")],
    )
    text = alert.text()
    assert "hunter2" not in text and "abcdef123456" not in text and "tok3n" not in text
    assert "postgresql://chaffee:***@db:5432/w" in text
