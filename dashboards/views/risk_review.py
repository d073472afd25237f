"""Risk review: the orders the model held for a human, and the analyst's decision.

The queue (fct_risk_review_queue) is ordered by expected loss (score x value) and shows the
model's three reasons in words. The signed-in analyst (never a typed name) approves or rejects;
the form is bound to the order it shows (its submit callback carries that order's id), and the
write path (:mod:`dashboards.actions` -> :func:`ml.risk.store.decide`) re-checks the analyst's
role and that the order is still pending, so a decision lands on the displayed order or is
refused, never on another one. Decisions appear in the decision log at once, go to the audit
log in the same transaction, and become labels at the next training.
"""

from __future__ import annotations

import plotly.express as px
import streamlit as st

from dashboards import actions, auth, data
from dashboards import components as ui

who = auth.require_page("risk.read", "Risk review")
st.title("Risk review")
st.caption(
    "Orders the fraud model sent to review, by expected loss. Decisions are stored with who "
    "signed in and when, and label the next training."
)

try:
    filters = ui.mart_filters("risk", carriers=False)
    overview = data.risk_overview(filters)
    counts = data.risk_counts(filters).iloc[0]
    queue = data.review_queue(filters)
except data.DataUnavailable as exc:
    ui.show_unavailable(str(exc))
    st.stop()

scored = int(counts["scored"])
cols = st.columns(4)
cols[0].metric("Orders scored", ui.fmt_count(scored), border=True)
for col, label, key in ((cols[1], "Held for review", "held"),
                        (cols[2], "Rejected by the model", "rejected")):  # fmt: skip
    col.metric(
        label,
        ui.fmt_count(counts[key]),
        delta=ui.fmt_rate(counts[key] / scored if scored else None),
        delta_color="off",
        delta_arrow="off",
        border=True,
    )
cols[3].metric("Waiting in the queue", ui.fmt_count(counts["waiting"]), border=True)
st.caption(
    f"Of the {ui.fmt_count(counts['held'])} orders held in the selection, "
    f"{ui.fmt_count(counts['decided'])} are decided and {ui.fmt_count(counts['waiting'])} wait."
)

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
may_decide = who.may("risk.decide")
if queue.empty:
    st.success(
        "The queue is empty: every held order in the selection has a decision.",
        icon=":material/done_all:",
    )
else:
    if int(counts["waiting"]) > len(queue):
        st.caption(f"The first {len(queue):,} of {int(counts['waiting']):,} waiting orders.")
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
    order = queue.iloc[rows[0] if rows and rows[0] < len(queue) else 0]
    order_id = str(order["order_id"])

    st.markdown(f"#### Decide on {order_id}")
    st.write(
        f"Score **{order['risk_score']:.2f}** on {ui.fmt_money(order['order_total'])} "
        f"(model {order['model_version']}). Why the model held it:"
    )
    for reason in (order["reason_1"], order["reason_2"], order["reason_3"]):
        if isinstance(reason, str) and reason:
            st.markdown(f"- {reason}")
    if not may_decide:
        st.info(
            f"{who.label} ({who.roles_text}) may read the queue but not decide: deciding needs "
            "the risk_reviewer role.",
            icon=":material/lock:",
        )
    else:
        # The form is bound to the order it shows: the submit callback carries this order's id
        # (fixed when the form was drawn), never "whatever is on top of the queue now".
        with st.form("risk_decision", clear_on_submit=False, border=True):
            st.caption(f"Deciding as **{who.label}**")
            decision = st.radio(
                "Decision", ["approve", "reject"], horizontal=True, key="risk_decision_choice"
            )
            st.text_area("Note (why)", key="risk_note", max_chars=2000)
            st.form_submit_button(
                "Record decision",
                type="primary",
                on_click=actions.submit_decision,
                args=(order_id,),
            )

failure = st.session_state.pop("risk_decision_error", None)
if failure:
    st.error(failure, icon=":material/block:")
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
