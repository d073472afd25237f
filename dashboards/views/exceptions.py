"""Exceptions: what needs action now, by severity and age against its SLA.

The batch worklist (fct_order_exceptions: late against the promise, stuck, carrier exceptions,
failed deliveries, customs holds) and the live alerts of the carrier-event stream
(fct_exception_alerts), each with the recommended action and the customer message that would
be sent, rendered from the CRM templates in the customer's language and tier (the first name
stays a placeholder: the dashboards never read names).
"""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

from dashboards import auth, data
from dashboards import components as ui

who = auth.require_page("exceptions", "Exceptions")

st.title("Exceptions")
st.caption(
    "Open exceptions most severe and most overdue first, the recommended action, and the message "
    "the customer gets. Filters apply to the day the order was placed."
)

try:
    filters = ui.mart_filters("exc")
    summary = data.exception_summary(filters)
except data.DataUnavailable as exc:
    ui.show_unavailable(str(exc))
    st.stop()

total_open = int(summary["open"].sum()) if not summary.empty else 0
breached = int(summary["sla_breached"].sum()) if not summary.empty else 0
critical = (
    int(summary.loc[summary["severity"] == "critical", "open"].sum()) if not summary.empty else 0
)
cols = st.columns(4)
cols[0].metric("Open exceptions", ui.fmt_count(total_open), border=True)
cols[1].metric(
    "Past their SLA",
    ui.fmt_count(breached),
    help="Open longer than the exception policy allows for its type and severity.",
    border=True,
)
cols[2].metric("Critical", ui.fmt_count(critical), border=True)
cols[3].metric(
    "Order value affected",
    ui.fmt_money_short(summary["order_value"].sum() if not summary.empty else None),
    border=True,
)

left, right = st.columns(2)
with left:
    st.subheader("Open by type and severity")
    if summary.empty:
        st.info("No open exceptions in the selection.")
    else:
        fig = px.bar(
            summary,
            x="open",
            y="exception_type",
            color="severity",
            orientation="h",
            category_orders={"severity": ui.SEVERITY_ORDER},
            color_discrete_map=ui.SEVERITY_COLORS,
        )
        fig.update_layout(
            height=320,
            margin={"l": 10, "r": 10, "t": 10, "b": 10},
            yaxis_title=None,
            xaxis_title="open exceptions",
        )
        st.plotly_chart(fig, width="stretch", config={"displayModeBar": False})
with right:
    st.subheader("Age against the SLA")
    ages = data.exception_age_profile(filters)
    if ages.empty:
        st.info("Nothing open.")
    else:
        bands = ["< 50 % of SLA", "50-100 % of SLA", "1-2x SLA", "> 2x SLA"]
        fig = px.bar(
            ages,
            x="age_band",
            y="open",
            color="severity",
            category_orders={"age_band": bands, "severity": ui.SEVERITY_ORDER},
            color_discrete_map=ui.SEVERITY_COLORS,
        )
        fig.update_layout(
            height=320,
            margin={"l": 10, "r": 10, "t": 10, "b": 10},
            xaxis_title=None,
            yaxis_title="open exceptions",
        )
        st.plotly_chart(fig, width="stretch", config={"displayModeBar": False})


def _message_box(row: pd.Series, caption: str) -> None:
    """The customer message a worklist row or an alert would send, in its language and tier."""
    subject, body = ui.message_preview(row)
    with st.container(border=True):
        st.caption(f"{caption}{row['language'] or 'en'}, {row['tier'] or 'standard'} tier)")
        st.markdown(f"**{subject}**")
        st.text(body)


# Only the open tab runs (on_change="rerun"): a filter change on the worklist does not also
# query and send the 500-row live-alerts table nobody is looking at.
tab_batch, tab_live = st.tabs(
    ["Worklist", "Live alerts (stream)"], key="exc_tab", on_change="rerun"
)

with tab_batch:
    if tab_batch.open:
        c1, c2, c3 = st.columns([2, 2, 1])
        severities = c1.multiselect(
            "Severity", ui.SEVERITY_ORDER, key="exc_severity", placeholder="All severities"
        )
        types = c2.multiselect(
            "Type",
            sorted(summary["exception_type"].unique()) if not summary.empty else [],
            key="exc_types",
            placeholder="All types",
        )
        breached_only = c3.toggle("Past SLA only", key="exc_breached")
        work = data.open_exceptions(filters, tuple(severities), tuple(types), breached_only)
        st.caption(
            f"{len(work):,} shown (at most {data.WORKLIST_LIMIT}); the counts above are complete."
        )
        # past-SLA rows flagged by a column, not a pandas Styler: styling every cell of a
        # 500-row worklist costs ~0.3-0.8 s of every rerun to marshal
        event = st.dataframe(
            work[
                [
                    "is_sla_breached",
                    "severity",
                    "exception_type",
                    "exception_reason",
                    "order_id",
                    "carrier_id",
                    "warehouse_id",
                    "mode",
                    "recommended_action",
                    "order_value",
                    "age_hours",
                    "sla_hours",
                    "sla_used",
                    "opened_at",
                ]
            ],
            hide_index=True,
            width="stretch",
            on_select="rerun",
            selection_mode="single-row",
            key="exc_table",
            column_config={
                "is_sla_breached": st.column_config.CheckboxColumn(
                    "past SLA", help="Open longer than its SLA allows"
                ),
                "age_hours": st.column_config.NumberColumn("age h", format="%.1f"),
                "sla_hours": st.column_config.NumberColumn("SLA h", format="%.0f"),
                "sla_used": st.column_config.ProgressColumn(
                    "SLA used", min_value=0, max_value=2, format="%.0f%%"
                ),
                "order_value": st.column_config.NumberColumn("value EUR", format="%.2f"),
                "recommended_action": st.column_config.TextColumn(
                    "recommended action", width="large"
                ),
            },
        )
        rows = event.selection.rows if event is not None else []
        if not work.empty:
            row = work.iloc[rows[0] if rows else 0]
            st.markdown(
                f"**{row['order_id']}** · {row['severity']} {row['exception_type']} "
                f"({row['exception_reason']}) · recommended: **{row['recommended_action']}** · "
                f"[open in tracking](/?order={row['order_id']})"
            )
            _message_box(row, "Customer message that would be sent (")

with tab_live:
    if tab_live.open:
        alerts = data.live_alerts(filters)
        if alerts.empty:
            st.info(
                "No unresolved live alerts in the selection. Alerts are raised by `ordertower stream` "
                "as carrier events arrive (`make live`)."
            )
        else:
            st.caption(
                f"{len(alerts):,} unresolved alerts, newest first (at most {data.WORKLIST_LIMIT})."
            )
            event = st.dataframe(
                alerts[
                    [
                        "severity",
                        "rule",
                        "reason",
                        "order_id",
                        "carrier_id",
                        "mode",
                        "recommended_option",
                        "message_status",
                        "hours_late",
                        "promise_at_risk",
                        "detected_at",
                        "act_by",
                    ]
                ],
                hide_index=True,
                width="stretch",
                on_select="rerun",
                selection_mode="single-row",
                key="exc_alerts",
                column_config={
                    "hours_late": st.column_config.NumberColumn("hours late", format="%.1f")
                },
            )
            rows = event.selection.rows if event is not None else []
            alert = alerts.iloc[rows[0] if rows else 0]
            st.markdown(
                f"**{alert['order_id']}** · {alert['severity']} {alert['rule']} · recommended: "
                f"**{alert['recommended_action'] or alert['recommended_option']}**"
            )
            options = ui.parse_alternatives(alert["alternatives_json"])
            if not options.empty:
                st.dataframe(options, hide_index=True, width="stretch")
            _message_box(alert, f"Customer message ({alert['message_status']}; ")
