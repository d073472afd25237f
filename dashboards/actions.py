"""The dashboards' one write path: a risk analyst's review decision.

Pages never write through :mod:`dashboards.data` (its connection is read-only and shared by
every session). A decision goes through :func:`decide`, which

* serialises writes in this process with a lock (two DuckDB writers on one SQLite catalog in
  one process can deadlock inside SQLite's busy handler; across processes they only retry),
* opens its own short-lived read-write lake connection, appends the decision with
  :func:`ml.risk.store.record_review` (validated, append-only: who, what, when, on which model
  version) and closes it, retrying when a materialisation is committing at the same moment,
* logs the decision (the audit trail outside the lake), and
* clears the cached queue and decision log so every session sees the decision at once.

The decision becomes a label for the next training (``int_order_fraud_labels``).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import duckdb

from dashboards import data
from ml.risk.store import ReviewError, record_review
from ordertower.lake import LakeError, connect

log = logging.getLogger("ordertower.dashboards.review")

_WRITE_LOCK = threading.Lock()
#: Attempts when the lake's catalog is busy with another writer's commit.
WRITE_ATTEMPTS = 5


class DecisionError(RuntimeError):
    """The decision was not recorded; the message says why, in words for the analyst."""


def decide(order_id: str, decision: str, reviewer: str, note: str = "") -> dict[str, Any]:
    """Record an analyst's decision on a held order and return the stored record."""
    if not (reviewer or "").strip():
        raise DecisionError("Enter your name: every decision records who took it.")
    delay = 0.2
    with _WRITE_LOCK:
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                con = connect()
            except LakeError as exc:
                raise DecisionError(f"The lake cannot be written right now: {exc}") from exc
            try:
                record = record_review(con, order_id, decision, reviewer, note)
                break
            except ReviewError as exc:
                raise DecisionError(str(exc)) from exc
            except duckdb.Error as exc:
                text = str(exc).lower()
                if attempt == WRITE_ATTEMPTS or not ("locked" in text or "conflict" in text):
                    raise DecisionError(f"The decision could not be stored: {exc}") from exc
                time.sleep(delay)
                delay *= 2
            finally:
                con.close()
    log.info(
        "review decision %s: %s %s by %r at %s (model %s)",
        record["decision_id"],
        record["decision"],
        record["order_id"],
        record["reviewer"],
        record["decided_at"].isoformat(),
        record["model_version"],
    )
    data.review_queue.clear()
    data.review_decisions.clear()
    data.order_risk.clear()
    return record
