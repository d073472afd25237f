"""Carbon: the footprint of every order, lane, mode and carrier, and what the green option saves.

Emissions are well-to-wheel (WTW = tank-to-wheel + well-to-tank), GLEC Framework / ISO 14083,
from the DEFRA freight factors per tonne-km, computed in the lake (fct_shipment_legs) and
allocated to orders by weight and distance. The what-if moves a share of the orders that have a
greener option onto it and shows the CO2e saved and the days it costs.
"""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from dashboards import auth, data
from dashboards import components as ui

who = auth.require_page("carbon", "Carbon")

st.title("Carbon")
st.caption(
    "Well-to-wheel CO2e (GLEC Framework / ISO 14083, DEFRA factors per tonne-km). Carrier filter: "
    "the carrier of each leg; trend: the order's last-mile carrier."
)

try:
    filters = ui.mart_filters("co2", window_days=56)
    trend = data.carbon_trend(filters, "week")
    potential = data.green_option_potential(filters).iloc[0]
except data.DataUnavailable as exc:
    ui.show_unavailable(str(exc))
    st.stop()

kg_total = trend["kg_co2e"].sum()
shipped = trend["shipped_orders"].sum()
orders = trend["orders"].sum()
cols = st.columns(4)
cols[0].metric("CO2e", ui.fmt_kg(kg_total), border=True)
cols[1].metric("Per shipped order", ui.fmt_kg(kg_total / shipped if shipped else None), border=True)
cols[2].metric(
    "Green option uptake",
    ui.fmt_rate(trend["green_orders"].sum() / orders if orders else None, 1),
    help="Orders whose customer chose green delivery.",
    border=True,
)
cols[3].metric(
    "Greener option available",
    ui.fmt_count(potential["candidates"]),
    help="Shipped orders not on the green option whose green route emits less.",
    border=True,
)

left, right = st.columns(2)
with left:
    st.subheader("CO2e per order over time")
    grain = (
        st.segmented_control("Grain", ["week", "day"], default="week", key="co2_grain") or "week"
    )
    series = trend if grain == "week" else data.carbon_trend(filters, "day")
    fig = go.Figure()
    fig.add_trace(
        go.Bar(
            x=series["period"],
            y=series["kg_co2e"],
            name="kg CO2e",
            marker_color="#9ecae9",
            yaxis="y",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=series["period"],
            y=series["kg_co2e_per_order"],
            name="kg per order",
            mode="lines+markers",
            line={"color": "#2ca02c"},
            yaxis="y2",
        )
    )
    fig.update_layout(
        height=330,
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        legend={"orientation": "h"},
        yaxis={"title": "kg CO2e"},
        yaxis2={"title": "kg per order", "overlaying": "y", "side": "right", "rangemode": "tozero"},
    )
    st.plotly_chart(fig, width="stretch", config={"displayModeBar": False})
with right:
    st.subheader("By mode and carrier")
    breakdown = data.carbon_breakdown(filters)
    if breakdown.empty:
        st.info("No legs in the selection.")
    else:
        fig = px.bar(
            breakdown,
            x="kg_co2e",
            y="carrier_name",
            color="mode",
            orientation="h",
            color_discrete_map=ui.MODE_COLORS,
            hover_data={"g_co2e_per_tkm": ":.1f", "tonne_km": ":,.0f", "legs": ":,"},
        )
        fig.update_layout(
            height=330,
            margin={"l": 10, "r": 10, "t": 10, "b": 10},
            yaxis_title=None,
            xaxis_title="kg CO2e",
            legend={"orientation": "h"},
        )
        st.plotly_chart(fig, width="stretch", config={"displayModeBar": False})

st.subheader("Lanes that emit most")
lanes = data.carbon_lanes(filters)
if lanes.empty:
    st.info("No lanes in the selection.")
else:
    import pydeck as pdk

    located = lanes.dropna(
        subset=["origin_lat", "origin_lon", "destination_lat", "destination_lon"]
    )
    located = located.assign(
        color=located["mode"].map(lambda m: ui.hex_to_rgb(ui.MODE_COLORS.get(m, "#888888"), 180)),
        width=1 + 9 * located["kg_co2e"] / max(located["kg_co2e"].max(), 1e-9),
        label=located["origin_name"]
        + " → "
        + located["destination_country_code"]
        + " ("
        + located["mode"]
        + "): "
        + located["kg_co2e"].map(lambda v: f"{v:,.0f}")
        + " kg",
    )
    m1, m2 = st.columns([3, 2])
    with m1:
        origins = located.drop_duplicates("origin_name")
        layers = [
            pdk.Layer(
                "ArcLayer",
                located,
                get_source_position=["origin_lon", "origin_lat"],
                get_target_position=["destination_lon", "destination_lat"],
                get_source_color="color",
                get_target_color="color",
                get_width="width",
                pickable=True,
            ),
            # hubs as dots named in the tooltip: a TextLayer builds a font atlas in the
            # browser on every render (~1.7 s in headless Chromium on the 1M-order lake)
            pdk.Layer(
                "ScatterplotLayer",
                origins.assign(label=origins["origin_name"]),
                get_position=["origin_lon", "origin_lat"],
                get_radius=8000,
                radius_min_pixels=4,
                get_fill_color=[30, 30, 30, 220],
                pickable=True,
            ),
        ]
        view = ui.view_state(
            list(located["origin_lat"]) + list(located["destination_lat"]),
            list(located["origin_lon"]) + list(located["destination_lon"]),
        )
        st.pydeck_chart(ui.deck(layers, view, {"text": "{label}"}), height=380)
    with m2:
        st.dataframe(
            lanes[
                [
                    "origin_name",
                    "destination_country_code",
                    "mode",
                    "legs",
                    "kg_co2e",
                    "kg_co2e_per_leg",
                ]
            ],
            hide_index=True,
            width="stretch",
            column_config={
                "kg_co2e": st.column_config.NumberColumn("kg CO2e", format="%.0f"),
                "kg_co2e_per_leg": st.column_config.NumberColumn("kg per leg", format="%.2f"),
            },
        )

st.subheader("What if more orders went green?")
share = st.slider(
    "Share of the orders with a greener option moved onto it",
    0,
    100,
    25,
    step=5,
    format="%d%%",
    key="co2_share",
)
saving_all = float(potential["candidate_kg_co2e"] - potential["candidate_green_kg_co2e"])
saved = share / 100 * saving_all
current = float(potential["current_kg_co2e"])
w = st.columns(3)
w[0].metric(
    "CO2e saved",
    ui.fmt_kg(saved),
    delta=None if not current else f"-{saved / current:.1%} of the selection's CO2e",
    delta_color="inverse",
    border=True,
)
w[1].metric(
    "Orders moved",
    ui.fmt_count(round(share / 100 * float(potential["candidates"] or 0))),
    border=True,
)
w[2].metric(
    "Extra delivery time",
    "—"
    if pd.isna(potential["candidate_extra_days"])
    else f"+{potential['candidate_extra_days']:.1f} d per order",
    help="Mean extra days of the green route over the current one, for the orders moved.",
    border=True,
)
