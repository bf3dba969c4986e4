"""The alerts' memory (table `alert_state`): a condition alerts when it is first seen, stays quiet while
it holds, and is announced as cleared when it no longer does, across ticks and daemon restarts."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import psycopg

from chaffee_assets.alerts.channels import Alert


@dataclass(frozen=True)
class Condition:
    """Something wrong now. `key` names the condition and what it is about (one alert per key);
    `kind` groups keys so that one evaluation can tell which of its kind have cleared."""

    key: str
    kind: str
    alert: Alert


def raised_keys(conn: psycopg.Connection, kinds: Iterable[str]) -> dict[str, str]:
    """key → summary of the raised conditions of `kinds`."""
    rows = conn.execute(
        "SELECT alert_key, summary FROM alert_state WHERE kind = ANY(%s)", (list(kinds),)
    ).fetchall()
    return dict(rows)


def remember(conn: psycopg.Connection, condition: Condition) -> None:
    conn.execute(
        """
        INSERT INTO alert_state (alert_key, kind, summary) VALUES (%s, %s, %s)
        ON CONFLICT (alert_key) DO UPDATE SET last_seen_at = now()
        """,
        (condition.key, condition.kind, condition.alert.title),
    )


def forget(conn: psycopg.Connection, key: str) -> None:
    conn.execute("DELETE FROM alert_state WHERE alert_key = %s", (key,))


Deliver = Callable[[Alert], bool]
"""Sends an alert; True when at least one channel took it."""


@dataclass(frozen=True)
class Outcome:
    raised: list[str]
    cleared: list[str]
    undelivered: list[str]


def reconcile(
    conn: psycopg.Connection,
    kinds: Iterable[str],
    current: Iterable[Condition],
    deliver: Deliver,
    cleared_alert: Callable[[str, str], Alert],
) -> Outcome:
    """Alert the conditions of `kinds` that are new, announce those no longer current as cleared.

    A condition is remembered only once delivered, so an alert that no channel took is tried again on
    the next evaluation; a clearing is forgotten only once delivered, for the same reason.
    """
    kinds = list(kinds)
    known = raised_keys(conn, kinds)
    current_by_key = {condition.key: condition for condition in current}
    raised, cleared, undelivered = [], [], []
    for key, condition in current_by_key.items():
        if key in known:
            conn.execute("UPDATE alert_state SET last_seen_at = now() WHERE alert_key = %s", (key,))
            continue
        if deliver(condition.alert):
            remember(conn, condition)
            raised.append(key)
        else:
            undelivered.append(key)
    for key, summary in known.items():
        if key in current_by_key:
            continue
        if deliver(cleared_alert(key, summary)):
            forget(conn, key)
            cleared.append(key)
        else:
            undelivered.append(key)
    return Outcome(raised, cleared, undelivered)
