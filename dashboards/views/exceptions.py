"""Exceptions: what needs action now, by severity and age against its SLA.

The batch worklist (fct_order_exceptions: late against the promise, stuck, carrier exceptions,
failed deliveries, customs holds) and the live alerts of the carrier-event stream
(fct_exception_alerts), each with the recommended action and the customer message that would
be sent, rendered from the CRM templates in the customer's language and tier (the first name
stays a placeholder: the dashboards never read names).

Open episodes past their SLA are split by what the data can tell (fct_order_exceptions.
worklist_status): truly overdue (the carrier's feed reported beyond the SLA's end and the
episode is still open) apart from those awaiting data (the feed that would close them has not
reported that far yet), so a quiet feed or a clock that ran ahead never reads as a backlog.
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


def _total(column: str) -> int:
    return int(summary[column].sum()) if not summary.empty else 0


total_open = _total("open")
critical = (
    int(summary.loc[summary["severity"] == "critical", "open"].sum()) if not summary.empty else 0
)
cols = st.columns(5)
cols[0].metric("Open exceptions", ui.fmt_count(total_open), border=True)
cols[1].metric(
    "Overdue",
    ui.fmt_count(_total("overdue")),
    help="Open, past its SLA, and the carrier's feed has reported beyond the SLA's end: the "
    "data could have closed it and did not. Work these first.",
    border=True,
)
cols[2].metric(
    "Awaiting data",
    ui.fmt_count(_total("awaiting_data")),
    help="Past its SLA by the lake's clock, but the feed that would close it has not reported "
    "that far yet: its closing event may simply not be here. Not counted as overdue.",
    border=True,
)
cols[3].metric("Critical", ui.fmt_count(critical), border=True)
cols[4].metric(
    "Order value affected",
    ui.fmt_money_short(summary["order_value"].sum() if not summary.empty else None),
    border=True,
)
st.caption(
    f"Of {ui.fmt_count(total_open)} open: {ui.fmt_count(_total('overdue'))} truly overdue, "
    f"{ui.fmt_count(_total('awaiting_data'))} awaiting data, "
    f"{ui.fmt_count(_total('within_sla'))} within their SLA. "
    + " ".join(f"**{k}**: {v}." for k, v in data.WORKLIST_STATUSES.items())
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
        c1, c2, c3 = st.columns([2, 2, 2])
        severities = c1.multiselect(
            "Severity", ui.SEVERITY_ORDER, key="exc_severity", placeholder="All severities"
        )
        types = c2.multiselect(
            "Type",
            sorted(summary["exception_type"].unique()) if not summary.empty else [],
            key="exc_types",
            placeholder="All types",
        )
        statuses = c3.multiselect(
            "Status",
            list(data.WORKLIST_STATUSES),
            key="exc_status",
            placeholder="All statuses",
            format_func=lambda s: s.replace("_", " "),
        )
        work = data.open_exceptions(
            filters, tuple(severities), tuple(types), statuses=tuple(statuses)
        )
        st.caption(
            f"{len(work):,} shown (at most {data.WORKLIST_LIMIT}); the counts above are complete."
        )
        # the status is a column, not a pandas Styler: styling every cell of a 500-row
        # worklist costs ~0.3-0.8 s of every rerun to marshal
        event = st.dataframe(
            work[
                [
                    "worklist_status",
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
                    "data_through_at",
                ]
            ],
            hide_index=True,
            width="stretch",
            on_select="rerun",
            selection_mode="single-row",
            key="exc_table",
            column_config={
                "worklist_status": st.column_config.TextColumn(
                    "status",
                    help="overdue: the data could have closed it and did not; awaiting data: "
                    "past its SLA, but the carrier's feed has not reported that far yet; "
                    "within SLA: still in time",
                ),
                "data_through_at": st.column_config.DatetimeColumn(
                    "feed reported to", help="How far the feed that would close it has reported"
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
                f"**{row['order_id']}** · {row['worklist_status'].replace('_', ' ')} · "
                f"{row['severity']} {row['exception_type']} "
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
                        "worklist_status",
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
                    "hours_late": st.column_config.NumberColumn("hours late", format="%.1f"),
                    "worklist_status": st.column_config.TextColumn(
                        "status",
                        help="overdue: still not delivered although the carrier's feed reported "
                        "beyond act by; awaiting data: past act by, but the feed has not "
                        "reported that far; within SLA: still in time",
                    ),
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
