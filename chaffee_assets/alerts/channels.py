"""Where alerts go: a Slack-compatible incoming webhook and/or e-mail over SMTP, both from settings.

A plain JSON POST of `{"text": …}` is what Slack's incoming webhooks take, and Mattermost's, Rocket.Chat's
and Discord's Slack-compatible endpoints too; dagster-slack would add a bot token and the Slack SDK
for the same one call, so the webhook is posted with the standard library. E-mail uses `smtplib`
(STARTTLS and login when configured). A channel that fails says why in one line, secrets hidden;
one failing channel never stops the others.
"""

from __future__ import annotations

import json
import smtplib
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Protocol
from urllib.parse import urlsplit

from chaffee_assets.error_text import one_line, redact
from chaffee_assets.settings import Settings

SEND_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class Alert:
    """One message: a one-line title, the lines that say what, which day and how many, and links."""

    title: str
    lines: Sequence[str] = ()
    links: Sequence[tuple[str, str]] = field(default_factory=tuple)  # (label, URL)
    cleared: bool = False

    def text(self) -> str:
        """The message as plain text, every secret hidden (a URL or error may have carried one)."""
        mark = "✅ cleared" if self.cleared else "🚨"
        body = [f"{mark} {self.title}", *self.lines, *(f"{label}: {url}" for label, url in self.links)]
        return redact("\n".join(body))


class Channel(Protocol):
    name: str

    def send(self, alert: Alert) -> None:
        """Deliver `alert`; raises an exception whose text says why it could not."""


@dataclass(frozen=True)
class WebhookChannel:
    url: str = field(repr=False)
    name: str = "webhook"

    @property
    def where(self) -> str:
        """The webhook's host only: the rest of the URL is its credential."""
        return urlsplit(self.url).netloc.rsplit("@", 1)[-1]

    def send(self, alert: Alert) -> None:
        request = urllib.request.Request(
            self.url,
            data=json.dumps({"text": alert.text()}).encode("utf-8"),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=SEND_TIMEOUT_S) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            raise OSError(f"the webhook at {self.where} answered HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise OSError(f"the webhook at {self.where} is unreachable: {reason}") from None


@dataclass(frozen=True)
class EmailChannel:
    host: str
    port: int
    sender: str
    recipients: tuple[str, ...]
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    starttls: bool = True
    name: str = "e-mail"

    @property
    def where(self) -> str:
        return f"{', '.join(self.recipients)} via {self.host}:{self.port}"

    def send(self, alert: Alert) -> None:
        message = EmailMessage()
        message["Subject"] = (
            "[Ask Dr Chaffee] cleared: " if alert.cleared else "[Ask Dr Chaffee] "
        ) + alert.title
        message["From"] = self.sender
        message["To"] = ", ".join(self.recipients)
        message.set_content(alert.text())
        try:
            with smtplib.SMTP(self.host, self.port, timeout=SEND_TIMEOUT_S) as smtp:
                if self.starttls:
                    smtp.starttls()
                if self.user:
                    smtp.login(self.user, self.password or "")
                smtp.send_message(message)
        except (smtplib.SMTPException, OSError) as exc:
            raise OSError(f"the mail server {self.host}:{self.port} refused: {one_line(exc)}") from None


def configured_channels(config: Settings) -> list[Channel]:
    """Every channel the settings configure (none: alerts are off)."""
    channels: list[Channel] = []
    if config.alert_webhook_url:
        channels.append(WebhookChannel(config.alert_webhook_url))
    if config.alert_email_configured:
        assert config.alert_smtp_host is not None
        channels.append(
            EmailChannel(
                host=config.alert_smtp_host,
                port=config.alert_smtp_port,
                sender=config.alert_email_from or f"chaffee-alerts@{config.alert_smtp_host}",
                recipients=config.alert_email_to,
                user=config.alert_smtp_user,
                password=config.alert_smtp_password,
                starttls=config.alert_smtp_starttls,
            )
        )
    return channels


@dataclass(frozen=True)
class Delivery:
    channel: str
    where: str
    error: str | None  # None: delivered


def send(alert: Alert, channels: Sequence[Channel]) -> list[Delivery]:
    """`alert` through every channel; what happened on each (a failure is a line, not an exception)."""
    deliveries = []
    for channel in channels:
        where = getattr(channel, "where", channel.name)
        try:
            channel.send(alert)
        except Exception as exc:  # one channel's failure must not silence the others
            deliveries.append(Delivery(channel.name, where, one_line(exc)))
        else:
            deliveries.append(Delivery(channel.name, where, None))
    return deliveries


def alerts_off_notice(config: Settings) -> str | None:
    """The start-up line when no alert channel is configured (None when one is)."""
    if configured_channels(config):
        return None
    return (
        "alerts: off (set CHAFFEE_ALERT_WEBHOOK_URL, or CHAFFEE_ALERT_SMTP_HOST and "
        'CHAFFEE_ALERT_EMAIL_TO, to be told when a run fails; docs/operations.md, "Alerts")'
    )
