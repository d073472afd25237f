"""Dispatch: the optimised plan against the baseline rule, and where each wave ships from.

Per wave (a day's orders), the OR-Tools allocation (ml/dispatch) beside the baseline rule
(nearest warehouse with stock, standard lane) measured the same way: cost per order, CO2e per
order, promise and next-day hit rates. For one wave: a map of the allocations (warehouse ->
destination, by lane variant) and the forward warehouses' van rounds.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboards import auth, data
from dashboards import components as ui

who = auth.require_page("dispatch", "Dispatch")

st.title("Dispatch")
st.caption(
    "Which warehouse ships which order, by which lane: the optimised plan vs the baseline rule, "
    "under stock, capacity, cost, the delivery promise and the carbon price."
)

try:
    options = data.filter_options()
    waves = data.dispatch_waves(None, None)
except data.DataUnavailable as exc:
    ui.show_unavailable(str(exc))
    st.stop()
if waves.empty:
    ui.show_unavailable(
        "No dispatch waves planned yet. Run `make demo` (it plans every day's wave)."
    )
    st.stop()

first, last = waves["wave_date"].min(), waves["wave_date"].max()
first, last = pd.Timestamp(first).date(), pd.Timestamp(last).date()
with st.sidebar:
    st.header("Filters")
    picked = st.date_input(
        "Wave dates",
        value=(max(first, last - dt.timedelta(days=27)), last),
        min_value=first,
        max_value=last,
        key="dsp_dates",
    )
    dates = tuple(picked) if isinstance(picked, list | tuple) else (picked,)
start, end = (dates[0], dates[-1]) if dates else (first, last)
sel = waves[
    (pd.to_datetime(waves["wave_date"]).dt.date >= start)
    & (pd.to_datetime(waves["wave_date"]).dt.date <= end)
]


def weighted(col: str) -> float | None:
    total = sel["orders"].sum()
    return float((sel[col] * sel["orders"]).sum() / total) if total else None


cols = st.columns(4)
cost, base_cost = weighted("cost_per_order_eur"), weighted("baseline_cost_per_order_eur")
cols[0].metric(
    "Cost per order",
    ui.fmt_money(cost),
    delta=None
    if cost is None or not base_cost
    else f"{cost / base_cost - 1:+.1%} vs baseline {base_cost:.2f}",
    delta_color="inverse",
    border=True,
)
co2, base_co2 = weighted("kg_co2e_per_order"), weighted("baseline_kg_co2e_per_order")
cols[1].metric(
    "CO2e per order",
    "—" if co2 is None else f"{co2:.3f} kg",
    delta=None
    if co2 is None or not base_co2
    else f"{co2 / base_co2 - 1:+.1%} vs baseline {base_co2:.3f}",
    delta_color="inverse",
    border=True,
)
hit, base_hit = weighted("promise_hit_rate"), weighted("baseline_promise_hit_rate")
cols[2].metric(
    "Promise hit rate",
    ui.fmt_rate(hit, 1),
    delta=None
    if hit is None or base_hit is None
    else f"{(hit - base_hit) * 100:+.1f} pts vs baseline",
    border=True,
)
nd, nd_feasible = weighted("next_day_hit_rate"), weighted("next_day_hit_rate_feasible")
cols[3].metric(
    "Next-day hit rate",
    ui.fmt_rate(nd, 1),
    delta=None if nd_feasible is None else f"{nd_feasible:.1%} where stock and network allow",
    delta_color="off",
    border=True,
)

fig = go.Figure()
fig.add_trace(
    go.Scatter(
        x=sel["wave_date"],
        y=sel["cost_per_order_eur"],
        name="plan: cost/order",
        mode="lines+markers",
        line={"color": "#2ca02c"},
    )
)
fig.add_trace(
    go.Scatter(
        x=sel["wave_date"],
        y=sel["baseline_cost_per_order_eur"],
        name="baseline: cost/order",
        mode="lines",
        line={"color": "#9ca3af", "dash": "dot"},
    )
)
fig.add_trace(
    go.Bar(
        x=sel["wave_date"],
        y=sel["kg_co2e_per_order"],
        name="plan: kg CO2e/order",
        marker_color="#9ecae9",
        yaxis="y2",
        opacity=0.6,
    )
)
fig.add_trace(
    go.Bar(
        x=sel["wave_date"],
        y=sel["baseline_kg_co2e_per_order"],
        name="baseline: kg CO2e/order",
        marker_color="#d1d5db",
        yaxis="y2",
        opacity=0.6,
    )
)
fig.update_layout(
    height=320,
    margin={"l": 10, "r": 10, "t": 10, "b": 10},
    legend={"orientation": "h"},
    yaxis={"title": "EUR per order"},
    barmode="group",
    yaxis2={
        "title": "kg CO2e per order",
        "overlaying": "y",
        "side": "right",
        "rangemode": "tozero",
    },
)
st.plotly_chart(fig, width="stretch", config={"displayModeBar": False})

st.subheader("One wave")
wave_days = sorted(pd.to_datetime(sel["wave_date"]).dt.date.unique(), reverse=True)
if not wave_days:
    st.info("No wave in the selected dates.")
    st.stop()
c1, c2 = st.columns([1, 1])
wave = c1.selectbox("Wave", wave_days, key="dsp_wave")
plan = (
    c2.segmented_control("Plan", ["optimised", "baseline"], default="optimised", key="dsp_plan")
    or "optimised"
)
flows = data.dispatch_flows(wave, plan)
by_wh = data.dispatch_by_warehouse(wave)

m1, m2 = st.columns([3, 2])
with m1:
    import pydeck as pdk

    located = flows.dropna(
        subset=["warehouse_lat", "warehouse_lon", "destination_lat", "destination_lon"]
    )
    if located.empty:
        st.info("No allocations with positions for this wave.")
    else:
        variant_colors = {
            v: ui.hex_to_rgb(c, 140)
            for v, c in zip(
                sorted(located["lane_variant"].dropna().unique()),
                ["#4c78a8", "#2ca02c", "#e45756", "#f58518", "#72b7b2", "#b279a2"] * 3,
                strict=False,
            )
        }
        located = located.assign(
            color=located["lane_variant"].map(
                lambda v: variant_colors.get(v, [120, 120, 120, 140])
            ),
            label=located["warehouse_id"]
            + " → ("
            + located["destination_lat"].round(1).astype(str)
            + ", "
            + located["destination_lon"].round(1).astype(str)
            + "): "
            + located["shipments"].astype(str)
            + " shipments by "
            + located["lane_variant"].fillna("?"),
        )
        warehouses = located.groupby(
            ["warehouse_id", "warehouse_name", "warehouse_type"], as_index=False
        ).agg(
            lat=("warehouse_lat", "first"),
            lon=("warehouse_lon", "first"),
            shipments=("shipments", "sum"),
        )
        warehouses["label"] = (
            warehouses["warehouse_id"]
            + " ("
            + warehouses["warehouse_type"]
            + "): "
            + warehouses["shipments"].astype(str)
        )
        layers = [
            pdk.Layer(
                "LineLayer",
                located,
                get_source_position=["warehouse_lon", "warehouse_lat"],
                get_target_position=["destination_lon", "destination_lat"],
                get_color="color",
                get_width=1.5,
                pickable=True,
            ),
            pdk.Layer(
                "ScatterplotLayer",
                warehouses,
                get_position=["lon", "lat"],
                get_radius="shipments",
                radius_scale=60,
                radius_min_pixels=5,
                radius_max_pixels=30,
                get_fill_color=[214, 39, 40, 220],
                pickable=True,
            ),
        ]
        view = ui.view_state(
            list(located["destination_lat"]) + list(warehouses["lat"]),
            list(located["destination_lon"]) + list(warehouses["lon"]),
        )
        st.pydeck_chart(ui.deck(layers, view, {"text": "{label}"}), height=420)
        st.caption(
            "Red dots: warehouses sized by shipments (hover for the name). "
            "Lines: warehouse → destination (cells of ~50 km), "
            "coloured by lane variant: " + ", ".join(variant_colors)
        )
with m2:
    st.dataframe(
        by_wh,
        hide_index=True,
        width="stretch",
        column_config={
            "transport_cost_eur": st.column_config.NumberColumn("cost EUR", format="%.0f"),
            "kg_co2e": st.column_config.NumberColumn("kg CO2e", format="%.1f"),
            "on_time_share": st.column_config.NumberColumn("on time", format="percent"),
        },
    )

routes, stops = data.van_routes(wave)
st.subheader("Van rounds of the forward warehouses")
# the rounds' map only on request: a collapsed expander still mounts its map, and each deck.gl
# map costs ~0.5-1 s a render in headless Chromium (software WebGL)
show_rounds = st.toggle(
    f"Show the {len(routes)} van rounds of this wave on a map", key="dsp_rounds"
)
if show_rounds:
    if routes.empty:
        st.caption("No van rounds for this wave.")
    else:
        import pydeck as pdk

        palette = [
            "#4c78a8",
            "#f58518",
            "#54a24b",
            "#e45756",
            "#72b7b2",
            "#b279a2",
            "#ff9da6",
            "#9d755d",
        ]
        # every route's stops in one pass (van_routes returns them in visiting order)
        by_route = {
            route_id: pts[["lon", "lat"]].values.tolist()
            for route_id, pts in stops.groupby("route_id", sort=False)
        }
        paths = []
        for i, route in enumerate(routes.itertuples()):
            path = [
                [route.depot_lon, route.depot_lat],
                *by_route.get(route.route_id, []),
                [route.depot_lon, route.depot_lat],
            ]
            paths.append(
                {
                    "path": path,
                    "color": ui.hex_to_rgb(palette[i % len(palette)], 220),
                    "label": f"{route.warehouse_id} van {route.vehicle_no}: {route.stops} stops, "
                    f"{route.distance_km:.0f} km",
                }
            )
        layers = [
            pdk.Layer(
                "PathLayer",
                pd.DataFrame(paths),
                get_path="path",
                get_color="color",
                width_min_pixels=2,
                pickable=True,
            ),
            pdk.Layer(
                "ScatterplotLayer",
                stops,
                get_position=["lon", "lat"],
                get_radius=300,
                radius_min_pixels=2,
                get_fill_color=[40, 40, 40, 200],
            ),
        ]
        view = ui.view_state(list(stops["lat"]), list(stops["lon"]))
        st.pydeck_chart(ui.deck(layers, view, {"text": "{label}"}), height=380)
        st.dataframe(
            routes.drop(columns=["depot_lat", "depot_lon"]), hide_index=True, width="stretch"
        )
