"""The dashboards' one write path: a risk analyst's review decision.

Pages never write through :mod:`dashboards.data` (its connection is read-only and shared by
every session). A decision goes through :func:`decide`, which

* takes the reviewer from the signed-in identity (``st.user``), never from a text box,
* calls :func:`ml.risk.store.decide`: one short-lived read-write lake transaction that checks
  the reviewer's role and that the order is still held and undecided *at the moment of
  writing*, appends the decision and its ``ops.audit_log`` row together, and retries while a
  materialisation commits (a refusal writes nothing but an audit row saying so), and
* clears the cached queue, counters and decision log so every session sees it at once.

:func:`submit_decision` is the form's submit callback: Streamlit binds its arguments (the
displayed order's id) when the form is drawn, so a queue that changed between drawing and
submitting cannot move the decision onto another order.

The decision becomes a label for the next training (``int_order_fraud_labels``).
"""

from __future__ import annotations

import logging
from typing import Any

import streamlit as st

from dashboards import auth, data
from ml.risk.store import ReviewError
from ml.risk.store import decide as store_decide
from ordertower.access import AccessDenied
from ordertower.audit import AuditError
from ordertower.redact import redact

log = logging.getLogger("ordertower.dashboards.review")


class DecisionError(RuntimeError):
    """The decision was not recorded; the message says why, in words for the analyst."""


def decide(order_id: str, decision: str, note: str = "") -> dict[str, Any]:
    """Record the signed-in analyst's decision on a held order and return the stored record."""
    who = auth.identity()
    try:
        record = store_decide(who, order_id, decision, note)
    except AccessDenied as exc:
        raise DecisionError(str(exc)) from exc
    except ReviewError as exc:
        raise DecisionError(f"Not recorded: {exc}.") from exc
    except AuditError as exc:
        raise DecisionError(
            f"The decision could not be stored; try again. ({redact(exc)})"
        ) from exc
    finally:
        # whatever happened, the queue shown may be stale (another analyst's decision)
        data.review_queue.clear()
        data.risk_counts.clear()
        data.review_decisions.clear()
        data.order_risk.clear()
    log.info(
        "review decision %s: %s %s by %r at %s (model %s)",
        record["decision_id"],
        record["decision"],
        record["order_id"],
        record["reviewer"],
        record["decided_at"].isoformat(),
        record["model_version"],
    )
    return record


def submit_decision(order_id: str) -> None:
    """The review form's submit callback, bound to the order the form showed."""
    state = st.session_state
    try:
        record = decide(order_id, state.get("risk_decision_choice", ""), state.get("risk_note", ""))
    except DecisionError as exc:
        state["risk_decision_error"] = str(exc)
        return
    state["risk_last_decision"] = record
    state["risk_note"] = ""
