"""Operational alerts: faults of the control tower itself, for operations, never for customers.

One row per episode in ``ops.operational_alerts`` (a deterministic id, stored once): an alert
storm that was suppressed, a bad edit of the rules or the message templates that was refused
(the last good version stays in use), events whose times the alert clock refused. Each is also
logged at ERROR, so it shows in the stream's log and in Dagster's view of the table.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime

import duckdb

log = logging.getLogger("ordertower.alerts")

OPS_ALERTS_TABLE = "ops.operational_alerts"
OPS_ALERTS_DDL = f"""
create table if not exists {OPS_ALERTS_TABLE} (
    op_alert_id varchar not null,
    kind varchar not null,
    subject varchar,
    severity varchar not null,
    detail varchar not null,
    affected integer,
    clock_at timestamptz,
    raised_at timestamptz not null
)"""

#: the kinds of operational alert, and their severity
KINDS = {
    "alert_storm": "critical",
    "rules_reload_failed": "high",
    "templates_reload_failed": "high",
    "clock_refused_events": "medium",
}


def ensure_ops_alerts_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(OPS_ALERTS_DDL)


def op_alert_id(kind: str, *episode: object) -> str:
    key = "|".join([kind, *(str(e) for e in episode)])
    return hashlib.sha1(key.encode()).hexdigest()[:24]


def raise_operational_alert(
    con: duckdb.DuckDBPyConnection,
    kind: str,
    detail: str,
    episode: tuple[object, ...],
    subject: str | None = None,
    affected: int | None = None,
    clock_at: datetime | None = None,
) -> bool:
    """Store one operational alert for this episode (inside the caller's transaction, if any);
    True when it is new. Logged at ERROR either way the first time."""
    ensure_ops_alerts_table(con)
    oid = op_alert_id(kind, *episode)
    known = con.execute(f"select 1 from {OPS_ALERTS_TABLE} where op_alert_id = ?", [oid]).fetchone()
    if known:
        return False
    log.error("operational alert %s (%s): %s", kind, subject or "-", detail)
    con.execute(
        f"insert into {OPS_ALERTS_TABLE} values (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            oid,
            kind,
            subject,
            KINDS.get(kind, "high"),
            detail[:4000],
            affected,
            clock_at,
            datetime.now(UTC),
        ],
    )
    return True
