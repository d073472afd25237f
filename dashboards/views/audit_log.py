"""Audit log: who signed in, who was denied what, and every write, with before and after.

For admins and stewards (``audit.read``). Rows come from ``ops.audit_log`` (append-only,
written by :mod:`ordertower.audit`: a decision and its audit row share one lake transaction)
through :mod:`dashboards.data`; this page only filters and lays them out.
"""

from __future__ import annotations

import datetime as dt

import streamlit as st

from dashboards import auth, data
from dashboards import components as ui
from ordertower.audit import ACTIONS, OUTCOMES

auth.require_page("audit.read", "Audit log")
st.title("Audit log")
st.caption(
    "Every sign-in, every denied access and every write (who, with which roles, what, before "
    "and after, when). Append-only; times in UTC."
)

today = dt.datetime.now(dt.UTC).date()
with st.sidebar:
    st.header("Filters")
    picked = st.date_input(
        "Days", value=(today - dt.timedelta(days=6), today), max_value=today, key="audit_dates"
    )
    actions = st.multiselect("Actions", ACTIONS, key="audit_actions")
    outcomes = st.multiselect("Outcomes", OUTCOMES, key="audit_outcomes")
    actor = st.text_input("Who (part of the e-mail)", key="audit_actor", max_chars=200)
start, end = (picked[0], picked[-1]) if isinstance(picked, tuple) and picked else (today, today)

try:
    events = data.audit_events(start, end, tuple(actions), tuple(outcomes), actor)
except data.DataUnavailable as exc:
    ui.show_unavailable(str(exc))
    st.stop()

cols = st.columns(4)
cols[0].metric("Events", ui.fmt_count(len(events)), border=True)
cols[1].metric("Sign-ins", ui.fmt_count((events["action"] == "sign_in").sum()), border=True)
cols[2].metric("Denied", ui.fmt_count((events["outcome"] != "ok").sum()), border=True)
cols[3].metric(
    "Writes",
    ui.fmt_count((~events["action"].isin(["sign_in", "access_denied", "raw_access"])).sum()),
    border=True,
)
if events.empty:
    st.caption("No audit events in the selection.")
else:
    if len(events) >= 1000:
        st.caption("The 1,000 most recent events of the selection.")
    st.dataframe(
        events,
        hide_index=True,
        width="stretch",
        column_config={
            "occurred_at": st.column_config.DatetimeColumn(
                "When (UTC)", format="YYYY-MM-DD HH:mm:ss"
            ),
            "before_state": st.column_config.TextColumn("Before", width="medium"),
            "after_state": st.column_config.TextColumn("After", width="medium"),
            "detail": st.column_config.TextColumn("Detail", width="large"),
        },
    )
