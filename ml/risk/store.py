"""The risk tables in the lake: stored features, scores and analysts' review decisions.

Functions take an open DuckDB connection with the lake attached (``ordertower.lake.connect``),
so this module knows table layouts, not where the lake lives. Writes replace a time window
(delete, then insert, in one transaction): re-running a day never duplicates it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import duckdb
import pandas as pd

from ml.risk.features import build_features, feature_names
from ordertower import audit
from ordertower.access import AccessDenied, Identity, require
from ordertower.lake import table_exists

FACTS = "intermediate.int_order_risk_facts"
VERDICTS = "intermediate.int_order_fraud_labels"
FEATURES = "ml.order_risk_features"
SCORES = "ml.order_risk_scores"
DECISIONS = "ops.risk_review_decisions"

SCORE_COLUMNS = {
    "order_id": "varchar",
    "partition_key": "varchar",
    "ordered_at": "timestamptz",
    "order_total": "double",
    "risk_score": "double",
    "raw_score": "double",
    "decision": "varchar",
    "reason_1": "varchar",
    "reason_1_feature": "varchar",
    "reason_1_contribution": "double",
    "reason_2": "varchar",
    "reason_2_feature": "varchar",
    "reason_2_contribution": "double",
    "reason_3": "varchar",
    "reason_3_feature": "varchar",
    "reason_3_contribution": "double",
    "model_name": "varchar",
    "model_version": "varchar",
    "scored_at": "timestamptz",
}
DECISION_COLUMNS = {
    "decision_id": "varchar",
    "order_id": "varchar",
    "decision": "varchar",
    "reviewer": "varchar",
    "note": "varchar",
    "decided_at": "timestamptz",
    "model_version": "varchar",
}


def _exists(con: duckdb.DuckDBPyConnection, qualified: str) -> bool:
    schema, table = qualified.split(".")
    return table_exists(con, schema, table)


def _replace_window(
    con: duckdb.DuckDBPyConnection,
    table: str,
    frame: pd.DataFrame,
    start: pd.Timestamp,
    end: pd.Timestamp,
) -> None:
    """Replace the rows of ``table`` ordered in ``[start, end)`` by ``frame``, in one transaction
    (the table is created from the frame's columns on first use)."""
    con.register("new_rows", frame)
    try:
        con.execute("begin")
        # no catalog query first: information_schema costs 0.2 s a call on the lake
        con.execute(f"create table if not exists {table} as select * from new_rows where false")
        con.execute(f"delete from {table} where ordered_at >= ? and ordered_at < ?", [start, end])
        con.execute(f"insert into {table} by name select * from new_rows")
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    finally:
        con.unregister("new_rows")


def window_bounds(first_day: str, last_day: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    """[first day 00:00 UTC, the day after the last 00:00 UTC)."""
    start = pd.Timestamp(first_day, tz="UTC")
    end = pd.Timestamp(last_day, tz="UTC") + pd.Timedelta(days=1)
    return start, end


#: Days of orders whose features are computed and stored at a time. A backfill of 90 days on a
#: 1M-order lake built one 1M x 331 frame and peaked at 21 GB; two weeks (~155k orders there)
#: bound it to a few GB. Each chunk reads its own 90-day history, so the features are those of
#: a single pass; on 28 days of the demo world one pass took 16.9 s, 14-day chunks 19.5 s,
#: 7-day chunks 27.1 s.
FEATURE_CHUNK_DAYS = 14


def write_features(con: duckdb.DuckDBPyConnection, start: pd.Timestamp, end: pd.Timestamp) -> int:
    """Compute the features of the orders placed in ``[start, end)`` and store them, one
    :data:`FEATURE_CHUNK_DAYS` window at a time (each replaced in its own transaction: a run
    stopped halfway leaves whole windows, and a re-run replaces them)."""
    rows = 0
    computed_at = pd.Timestamp(datetime.now(UTC))
    lo = pd.Timestamp(start)
    while lo < end:
        hi = min(lo + pd.Timedelta(days=FEATURE_CHUNK_DAYS), pd.Timestamp(end))
        frame = build_features(con, FACTS, VERDICTS, start=lo, end=hi)
        keys = con.execute(
            f"select order_id, partition_key from {FACTS} where ordered_at >= ? and ordered_at < ?",
            [lo, hi],
        ).df()
        frame = frame.merge(keys, on="order_id", how="left")
        frame["computed_at"] = computed_at
        _replace_window(con, FEATURES, frame, lo, hi)
        rows += len(frame)
        del frame
        lo = hi
    return rows


def read_features(
    con: duckdb.DuckDBPyConnection,
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Stored features (with order_total) of the orders placed in ``[start, end)``."""
    if not _exists(con, FEATURES):
        return pd.DataFrame(columns=["order_id", "ordered_at", *feature_names()])
    where, params = [], []
    if start is not None:
        where.append("ordered_at >= ?")
        params.append(start)
    if end is not None:
        where.append("ordered_at < ?")
        params.append(end)
    clause = f"where {' and '.join(where)}" if where else ""
    return con.execute(
        f"select * from {FEATURES} {clause} order by ordered_at, order_id", params
    ).df()


def read_verdicts(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    return con.execute(f"select order_id, is_fraud, fraud_known_at from {VERDICTS}").df()


def lake_clock(con: duckdb.DuckDBPyConnection) -> pd.Timestamp:
    """The latest order in the lake: "now" for a world that is replayed, not live."""
    value = con.execute(f"select max(ordered_at) from {FACTS}").fetchone()[0]
    if value is None:
        raise LookupError(f"no orders in {FACTS}: build the lake first")
    return pd.Timestamp(value)


def write_scores(
    con: duckdb.DuckDBPyConnection,
    scores: pd.DataFrame,
    start: pd.Timestamp,
    end: pd.Timestamp,
) -> int:
    """Replace the scores of the orders placed in ``[start, end)``."""
    cols = ", ".join(f"{c} {t}" for c, t in SCORE_COLUMNS.items())
    con.execute(f"create table if not exists {SCORES} ({cols})")
    _replace_window(con, SCORES, scores[list(SCORE_COLUMNS)], start, end)
    return len(scores)


class ReviewError(ValueError):
    """A review decision is refused (unknown order, not held for review, already decided,
    bad decision); the message says why, in words for the analyst."""


def pending_review(con: duckdb.DuckDBPyConnection, order_id: str) -> dict:
    """The order's score row when it is held for review and nobody has decided on it yet;
    :class:`ReviewError` saying why otherwise."""
    if not _exists(con, SCORES):
        raise ReviewError("no orders have been scored yet")
    row = con.execute(
        f"select decision, model_version, risk_score from {SCORES} where order_id = ?",
        [order_id],
    ).fetchone()
    if row is None:
        raise ReviewError(f"order {order_id!r} has no risk score")
    if row[0] != "review":
        raise ReviewError(
            f"order {order_id!r} is not held for review (the model's decision is {row[0]!r}); "
            "only held orders take a reviewer's decision"
        )
    if _exists(con, DECISIONS):
        done = con.execute(
            f"select decision, reviewer, decided_at from {DECISIONS} where order_id = ? "
            "order by decided_at desc limit 1",
            [order_id],
        ).fetchone()
        if done is not None:
            raise ReviewError(
                f"order {order_id!r} was already decided: {done[0]} by {done[1]} at "
                f"{done[2]:%Y-%m-%d %H:%M:%S} UTC; it is no longer pending"
            )
    return {"decision": row[0], "model_version": row[1], "risk_score": row[2]}


def record_review(
    con: duckdb.DuckDBPyConnection,
    order_id: str,
    decision: str,
    reviewer: Identity,
    note: str = "",
) -> dict:
    """The one write path for an analyst's decision: checked, appended, never updated.

    ``reviewer`` is the signed-in identity (never a typed name) and must hold
    ``risk.decide``; the order must be held for review and not decided yet, checked here, at
    the moment of writing, whatever the caller showed. The decision and its audit row are
    written on ``con``: call it inside one transaction (:func:`decide`). The decision becomes
    a label for the next training (``int_order_fraud_labels``).
    """
    require(reviewer, "risk.decide", "risk review decisions")
    decision = (decision or "").strip().lower()
    if decision not in ("approve", "reject"):
        raise ReviewError(f"decision must be approve or reject, not {decision!r}")
    before = pending_review(con, order_id)
    cols = ", ".join(f"{c} {t}" for c, t in DECISION_COLUMNS.items())
    con.execute(f"create table if not exists {DECISIONS} ({cols})")
    record = {
        "decision_id": str(uuid.uuid4()),
        "order_id": order_id,
        "decision": decision,
        "reviewer": reviewer.label[:200],
        "note": (note or "")[:2000],
        "decided_at": datetime.now(UTC),
        "model_version": before["model_version"],
    }
    con.execute(
        f"insert into {DECISIONS} ({', '.join(record)}) values ({', '.join('?' * len(record))})",
        list(record.values()),
    )
    audit.record(
        con,
        reviewer,
        "risk_decision",
        target=order_id,
        before={"status": "pending", **before},
        after={k: record[k] for k in ("decision_id", "decision", "note", "model_version")},
    )
    return record


def decide(identity: Identity | None, order_id: str, decision: str, note: str = "") -> dict:
    """Record a decision and its audit row in one lake transaction (retried while another
    writer commits). A refusal (no role, not pending, bad decision) writes nothing but an
    audit row saying it was refused, and raises :class:`AccessDenied` or :class:`ReviewError`.
    """
    try:
        return audit.write(lambda con: record_review(con, order_id, decision, identity, note))
    except AccessDenied as exc:
        audit.append(identity, "risk_decision", order_id, "denied", detail=str(exc))
        raise
    except ReviewError as exc:
        audit.append(identity, "risk_decision", order_id, "refused", detail=str(exc))
        raise
