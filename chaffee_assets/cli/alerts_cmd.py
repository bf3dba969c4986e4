"""`chaffee alerts test`: one test message through every configured alert channel, and what happened."""

from __future__ import annotations

import argparse
import socket
from datetime import UTC, datetime


def register(subparsers: argparse._SubParsersAction) -> None:
    alerts = subparsers.add_parser(
        "alerts",
        help="the pipeline's alerts (webhook, e-mail): send a test message",
        description='Alerts are sent by the daemon\'s sensors (docs/operations.md, "Alerts").',
    )
    verbs = alerts.add_subparsers(dest="verb", metavar="VERB", required=True)
    test = verbs.add_parser(
        "test",
        help="send one test message through every configured channel and say what happened",
        description="Sends one message through the webhook (CHAFFEE_ALERT_WEBHOOK_URL) and e-mail "
        "(CHAFFEE_ALERT_SMTP_HOST, CHAFFEE_ALERT_EMAIL_TO) that are configured. Exit status 1 when "
        "a channel failed, 2 when none is configured.",
    )
    test.set_defaults(handler=_test)


def _test(args: argparse.Namespace) -> int:
    from chaffee_assets.alerts.channels import Alert, configured_channels, send
    from chaffee_assets.cli.main import UserError
    from chaffee_assets.settings import settings

    config = settings()
    channels = configured_channels(config)
    if not channels:
        raise UserError(
            "no alert channel is configured: set CHAFFEE_ALERT_WEBHOOK_URL, or CHAFFEE_ALERT_SMTP_HOST "
            "and CHAFFEE_ALERT_EMAIL_TO"
        )
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    alert = Alert(
        title="test message from Ask Dr Chaffee",
        lines=[
            f"Sent by `chaffee alerts test` on {socket.gethostname()} at {now}.",
            "Alerts reach you here.",
        ],
        links=[("Dagster UI", config.dagster_ui_url)],
    )
    failed = 0
    for delivery in send(alert, channels):
        if delivery.error:
            failed += 1
            print(f"{delivery.channel}: FAILED ({delivery.error})")
        else:
            print(f"{delivery.channel}: sent to {delivery.where}")
    return 1 if failed else 0
