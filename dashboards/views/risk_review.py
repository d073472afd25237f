"""Risk review: the orders the model held for a human, and the analyst's decision.

The queue (fct_risk_review_queue) is ordered by expected loss (score x value) and shows the
model's three reasons in words. An analyst approves or rejects with their name and a note; the
decision is written through the one audited write path (:mod:`dashboards.actions`, never the
read connection), appears in the decision log at once and becomes a label at the next training.
"""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

from dashboards import actions, data
from dashboards import components as ui

st.title("Risk review")
st.caption(
    "Orders the fraud model sent to review, by expected loss. Decisions are stored with who and "
    "when, and label the next training."
)

try:
    filters = ui.mart_filters("risk", carriers=False)
    overview = data.risk_overview(filters)
    queue = data.review_queue()
except data.DataUnavailable as exc:
    ui.show_unavailable(str(exc))
    st.stop()

decided = (
    overview.groupby("final_decision")["orders"].sum()
    if not overview.empty
    else pd.Series(dtype=int)
)
scored = int(decided.sum()) if not decided.empty else 0
cols = st.columns(4)
cols[0].metric("Orders scored", ui.fmt_count(scored), border=True)
for i, name in enumerate(["review", "reject"], start=1):
    n = int(decided.get(name, 0))
    cols[i].metric(
        f"Held for {name}" if name == "review" else "Rejected",
        ui.fmt_count(n),
        delta=ui.fmt_rate(n / scored if scored else None),
        delta_color="off",
        delta_arrow="off",
        border=True,
    )
cols[3].metric("Waiting in the queue", ui.fmt_count(len(queue)), border=True)

if not overview.empty:
    fig = px.bar(
        overview,
        x="order_date",
        y="orders",
        color="final_decision",
        color_discrete_map={"approve": "#9ecae9", "review": "#ff7f0e", "reject": "#d62728"},
        category_orders={"final_decision": ["approve", "review", "reject"]},
    )
    fig.update_layout(
        height=240,
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        xaxis_title=None,
        yaxis_title="orders",
        legend={"orientation": "h"},
    )
    st.plotly_chart(fig, width="stretch", config={"displayModeBar": False})

st.subheader("Review queue")
if queue.empty:
    st.success("The queue is empty: every held order has a decision.", icon=":material/done_all:")
else:
    event = st.dataframe(
        queue[
            [
                "queue_position",
                "order_id",
                "risk_score",
                "order_total",
                "expected_loss",
                "reason_1",
                "reason_2",
                "reason_3",
                "channel",
                "payment_method",
                "shipping_country_code",
                "ordered_at",
            ]
        ],
        hide_index=True,
        width="stretch",
        on_select="rerun",
        selection_mode="single-row",
        key="risk_queue",
        column_config={
            "queue_position": st.column_config.NumberColumn("#", width="small"),
            "risk_score": st.column_config.ProgressColumn(
                "score", min_value=0, max_value=1, format="%.2f"
            ),
            "order_total": st.column_config.NumberColumn("value EUR", format="%.2f"),
            "expected_loss": st.column_config.NumberColumn("expected loss EUR", format="%.2f"),
        },
    )
    rows = event.selection.rows if event is not None else []
    order = queue.iloc[rows[0] if rows else 0]

    st.markdown(f"#### Decide on {order['order_id']}")
    st.write(
        f"Score **{order['risk_score']:.2f}** on {ui.fmt_money(order['order_total'])} "
        f"(model {order['model_version']}). Why the model held it:"
    )
    for reason in (order["reason_1"], order["reason_2"], order["reason_3"]):
        if isinstance(reason, str) and reason:
            st.markdown(f"- {reason}")
    with st.form("risk_decision", clear_on_submit=False, border=True):
        c1, c2 = st.columns([1, 2])
        decision = c1.radio(
            "Decision", ["approve", "reject"], horizontal=True, key="risk_decision_choice"
        )
        reviewer = c2.text_input("Your name", key="risk_reviewer", max_chars=200)
        note = st.text_area("Note (why)", key="risk_note", max_chars=2000)
        submitted = st.form_submit_button("Record decision", type="primary")
    if submitted:
        try:
            record = actions.decide(str(order["order_id"]), decision, reviewer, note)
        except actions.DecisionError as exc:
            st.error(str(exc), icon=":material/block:")
        else:
            st.session_state["risk_last_decision"] = record
            st.rerun()

last = st.session_state.get("risk_last_decision")
if last:
    st.success(
        f"Recorded: {last['decision']} {last['order_id']} by {last['reviewer']} at "
        f"{last['decided_at']:%Y-%m-%d %H:%M:%S} UTC. It becomes a label at the next training.",
        icon=":material/task_alt:",
    )

st.subheader("Decision log")
log = data.review_decisions()
if log.empty:
    st.caption("No decisions yet.")
else:
    st.dataframe(log, hide_index=True, width="stretch")
