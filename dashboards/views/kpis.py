"""KPIs: the operations centre's scorecard, beyond on-time rate.

Every rate is recomputed from the summed facts of ``marts.kpi_daily`` for the selection (never
an average of daily rates), shown against its target (``dashboards/kpi_targets.yaml``), as a
weekly or daily trend, and drilled down by warehouse, carrier, channel or source system.

Outcome rates (on time, next-day hit, fill, cancellation) count matured orders only; a period
that still holds open orders is drawn as provisional (hollow points on a grey band), never as a
failure, and the maturity rule is stated under the chart.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
import yaml

from dashboards import auth, data
from dashboards import components as ui

TARGETS = yaml.safe_load((Path(__file__).resolve().parent.parent / "kpi_targets.yaml").read_text())


def fmt(kind: str, value) -> str:
    if kind == "rate":
        return ui.fmt_rate(value, 1)
    if kind == "eur":
        return ui.fmt_money(value)
    if kind == "kg":
        return "—" if pd.isna(value) else f"{float(value):.3f} kg"
    return "—" if pd.isna(value) else f"{float(value):+.2f}"


def meets(name: str, value) -> bool | None:
    if value is None or pd.isna(value):
        return None
    spec = TARGETS[name]
    return value >= spec["target"] if spec["direction"] == "at_least" else value <= spec["target"]


def maturity_rule() -> str:
    """The maturity rule in words (the dbt model int_kpi_facts states it for the data)."""
    return (
        "An order's outcome is known once it is cancelled, delivered or lost, or once its "
        f"promised day ended more than {data.KPI_MATURITY_HOURS} h before the lake's data clock "
        "(the time through which every source has reported); until then it is open and counts "
        "in no outcome rate (on time, next-day hit, fill, cancellation): an order in transit is "
        "never counted as late."
    )


def provisional_band(fig: go.Figure, periods: pd.Series, grain: str) -> None:
    """Grey band behind the provisional periods, labelled, so they never read as failures."""
    if periods.empty:
        return
    half = pd.Timedelta(days=3.5) if grain == "week" else pd.Timedelta(hours=12)
    start = pd.Timestamp(periods.min()) - half
    end = pd.Timestamp(periods.max()) + half
    fig.add_vrect(
        x0=start,
        x1=end,
        fillcolor="#9ca3af",
        opacity=0.18,
        line_width=0,
        layer="below",
        annotation_text="provisional",
        annotation_position="top left",
    )


who = auth.require_page("kpis", "KPIs")

st.title("KPIs")
st.caption(
    "Rates recomputed from the summed daily facts of the selection, against the targets in "
    "`dashboards/kpi_targets.yaml`."
)

try:
    filters = ui.mart_filters("kpi", window_days=56)
    totals = data.kpi_totals(filters).iloc[0]
except data.DataUnavailable as exc:
    ui.show_unavailable(str(exc))
    st.stop()

if pd.isna(totals["orders"]) or not totals["orders"]:
    st.info("No orders in the selection.")
    st.stop()

head = st.columns(4)
head[0].metric("Orders", ui.fmt_count(totals["orders"]), border=True)
head[1].metric("Order value", ui.fmt_money_short(totals["order_value"]), border=True)
head[2].metric(
    "Recovered order value",
    ui.fmt_money_short(totals["recovered_order_value"]),
    help="Value of orders that had an exception and were still delivered complete.",
    border=True,
)
head[3].metric(
    "Average rating",
    "—" if pd.isna(totals["avg_rating"]) else f"{totals['avg_rating']:.2f} / 5",
    border=True,
)

open_orders = 0 if pd.isna(totals["open_orders"]) else int(totals["open_orders"])
if open_orders:
    st.caption(
        f"Provisional: {ui.fmt_count(open_orders)} of {ui.fmt_count(totals['orders'])} orders "
        f"({ui.fmt_rate(open_orders / totals['orders'], 1)}) of the selection are still open and "
        "count in no outcome rate below yet. " + maturity_rule()
    )

cards = st.columns(5)
for i, (name, spec) in enumerate(TARGETS.items()):
    ok = meets(name, totals[name])
    cards[i % 5].metric(
        spec["label"],
        fmt(spec["format"], totals[name]),
        delta=None
        if ok is None
        else ("on target" if ok else f"target {fmt(spec['format'], spec['target'])}"),
        delta_color="normal" if ok else "inverse",
        delta_arrow="off",
        border=True,
    )

st.subheader("Trend")
c1, c2 = st.columns([3, 1])
chosen = c1.multiselect(
    "KPIs",
    list(TARGETS),
    default=["on_time_delivery_rate", "next_day_promise_hit_rate", "perfect_order_rate"],
    format_func=lambda k: TARGETS[k]["label"],
    key="kpi_series",
)
grain = c2.segmented_control("Grain", ["week", "day"], default="week", key="kpi_grain") or "week"
trend = data.kpi_trend(filters, grain)
provisional = trend["is_provisional"].fillna(False).astype(bool)
open_share = (trend["open_orders"] / trend["orders"]).fillna(0.0)
fig = go.Figure()
palette = ["#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2"]
for i, name in enumerate(chosen):
    color = palette[i % len(palette)]
    label = TARGETS[name]["label"]
    # matured periods: a solid line; provisional ones: hollow points on a dotted line from the
    # last matured one, with how many orders are still open in the hover
    fig.add_trace(
        go.Scatter(
            x=trend["period"],
            y=trend[name].where(~provisional),
            name=label,
            mode="lines+markers",
            line={"color": color},
        )
    )
    if provisional.any():
        linked = provisional | provisional.shift(-1, fill_value=False)
        fig.add_trace(
            go.Scatter(
                x=trend["period"],
                y=trend[name].where(linked),
                name=f"{label} (provisional)",
                mode="lines+markers",
                line={"color": color, "dash": "dot"},
                marker={"symbol": "circle-open", "size": 9},
                opacity=0.6,
                customdata=open_share,
                hovertemplate="%{y:.1%} provisional: %{customdata:.0%} of orders still open"
                "<extra></extra>",
            )
        )
    fig.add_hline(y=TARGETS[name]["target"], line={"dash": "dot", "color": color, "width": 1})
provisional_band(fig, trend.loc[provisional, "period"], grain)
fig.update_layout(
    height=340,
    margin={"l": 10, "r": 10, "t": 10, "b": 10},
    legend={"orientation": "h"},
    yaxis_title=None,
    xaxis_title=None,
)
st.plotly_chart(fig, width="stretch", config={"displayModeBar": False})
if provisional.any():
    periods = ", ".join(
        f"{pd.Timestamp(p):%Y-%m-%d} ({share:.0%} open)"
        for p, share in zip(trend.loc[provisional, "period"], open_share[provisional], strict=True)
    )
    st.caption(
        f"Provisional {'weeks' if grain == 'week' else 'days'} (grey band, hollow points): "
        f"{periods}. More than {data.KPI_PROVISIONAL_OPEN_SHARE:.0%} of their orders are still "
        "open: their rates count the orders matured so far and may still move."
    )
st.caption("Dotted horizontal lines: targets. " + maturity_rule())

st.subheader("Drill-down")
d1, d2 = st.columns([1, 3])
dimension = d1.radio("By", list(data.KPI_DIMENSIONS), key="kpi_dim")
by = data.kpi_by(filters, dimension)
shown = ["member", "orders", *TARGETS.keys(), "recovered_order_value"]
d2.dataframe(
    by[shown].style.apply(
        lambda frame: pd.DataFrame(
            {
                col: [
                    "" if meets(col, v) is None else (ui.GOOD_CSS if meets(col, v) else ui.BAD_CSS)
                    for v in frame[col]
                ]
                if col in TARGETS
                else [""] * len(frame)
                for col in frame.columns
            },
            index=frame.index,
        ),
        axis=None,
    ),
    hide_index=True,
    width="stretch",
    column_config={
        "member": st.column_config.TextColumn(dimension),
        **{
            k: st.column_config.NumberColumn(
                v["label"], format="percent" if v["format"] == "rate" else "%.2f"
            )
            for k, v in TARGETS.items()
        },
        "recovered_order_value": st.column_config.NumberColumn("recovered EUR", format="%.0f"),
    },
)
