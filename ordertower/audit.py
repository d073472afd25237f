"""The audit trail: ``ops.audit_log`` in the lake, append-only.

Every sign-in, every denied access and every write (who, with which roles, what, on which
target, the state before and after, when, through which channel) is one row. Rows are only
ever inserted: this module has no update or delete, and nothing else writes the table. A write
that changes data records its audit row in the *same* lake transaction (:func:`record` on the
writer's connection), so a decision without its audit row, or the reverse, cannot exist.
Events that change nothing (sign-in, denials) go through :func:`append`, which opens its own
short-lived connection.

Lake writes here are short and retried: a materialisation committing at the same moment makes
the SQLite catalog report "locked" or DuckLake a "conflict" for a moment, never for long.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import duckdb

from ordertower import lake as lake_mod
from ordertower.access import Identity
from ordertower.lake import LakeError, connect

log = logging.getLogger("ordertower.audit")

TABLE = "ops.audit_log"
COLUMNS = {
    "event_id": "varchar",
    "occurred_at": "timestamptz",
    "actor": "varchar",
    "actor_subject": "varchar",
    "roles": "varchar",
    "channel": "varchar",
    "action": "varchar",
    "target": "varchar",
    "outcome": "varchar",
    "before_state": "varchar",
    "after_state": "varchar",
    "detail": "varchar",
}
#: What an audit row may say happened.
ACTIONS = ("sign_in", "access_denied", "raw_access", "risk_decision", "crm_requeue")
OUTCOMES = ("ok", "denied", "refused")

#: Attempts when the lake's catalog is busy with another writer's commit.
WRITE_ATTEMPTS = 6
#: One lake writer at a time in this process: two DuckDB writers on one SQLite catalog in one
#: process can deadlock inside SQLite's busy handler (across processes they only retry).
_WRITE_LOCK = threading.Lock()

T = TypeVar("T")


class AuditError(RuntimeError):
    """The write (and so its audit row) could not be stored; nothing was changed."""


def _json(value: Any) -> str | None:
    if value is None:
        return None
    return json.dumps(value, default=str, sort_keys=True)


def ensure_table(con: duckdb.DuckDBPyConnection) -> None:
    cols = ", ".join(f"{c} {t}" for c, t in COLUMNS.items())
    con.execute(f"create table if not exists {TABLE} ({cols})")


def record(
    con: duckdb.DuckDBPyConnection,
    identity: Identity | None,
    action: str,
    target: str = "",
    outcome: str = "ok",
    before: Any = None,
    after: Any = None,
    detail: str = "",
) -> dict[str, Any]:
    """Insert one audit row on ``con`` (inside the caller's transaction when it has one)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown audit outcome {outcome!r}")
    row = {
        "event_id": str(uuid.uuid4()),
        "occurred_at": datetime.now(UTC),
        "actor": identity.label if identity else "(anonymous)",
        "actor_subject": identity.subject if identity else None,
        "roles": identity.roles_text if identity else "",
        "channel": identity.channel if identity else "dashboards",
        "action": action,
        "target": (target or "")[:500],
        "outcome": outcome,
        "before_state": _json(before),
        "after_state": _json(after),
        "detail": (detail or "")[:2000],
    }
    ensure_table(con)
    con.execute(
        f"insert into {TABLE} ({', '.join(row)}) values ({', '.join('?' * len(row))})",
        list(row.values()),
    )
    return row


def write(fn: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
    """Run ``fn`` in one lake transaction on a short-lived read-write connection, retrying
    when another writer is committing; :class:`AuditError` when it cannot be stored.

    Exceptions ``fn`` raises on purpose (a refused decision) roll back and propagate as they are.
    """
    delay = 0.2
    with _WRITE_LOCK:
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                con = connect(create=False)  # a decision never creates a lake
            except LakeError as exc:
                raise AuditError(f"the lake cannot be written right now: {exc}") from exc
            try:
                con.execute("begin")
                result = fn(con)
                con.execute("commit")
                return result
            except duckdb.Error as exc:
                _rollback(con)
                if attempt == WRITE_ATTEMPTS or not lake_mod.transient(exc):
                    raise AuditError(f"the change could not be stored: {exc}") from exc
                time.sleep(delay)
                delay *= 2
            except BaseException:
                _rollback(con)
                raise
            finally:
                con.close()
    raise AssertionError("unreachable")  # pragma: no cover


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    with contextlib.suppress(duckdb.Error):
        con.execute("rollback")


def append(
    identity: Identity | None,
    action: str,
    target: str = "",
    outcome: str = "ok",
    detail: str = "",
) -> bool:
    """Record an event that changes no data (a sign-in, a denial). Never raises: when the lake
    cannot take it, the event goes to the process log instead and ``False`` is returned; the
    caller's decision (deny, allow) does not depend on it."""
    try:
        write(lambda con: record(con, identity, action, target, outcome, detail=detail))
        return True
    except (AuditError, LakeError) as exc:
        log.warning(
            "audit row not stored (%s): %s %s %s %s",
            exc.__class__.__name__,
            identity.label if identity else "(anonymous)",
            action,
            target,
            outcome,
        )
        return False
