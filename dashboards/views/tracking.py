"""Order tracking: one order's unified timeline across carriers and modes.

Search by order id, carrier tracking reference or customer id (exact match, bound as a query
parameter: quotes, SQL or unicode in the box only ever mean "not found"). For the order: its
status, promise and latest ETA with a delay warning; planned vs actual per milestone; a map of
its legs; every carrier event in the canonical vocabulary beside the carrier's own code; and,
when it is late or at risk, the alternatives with their cost, delivery date and CO2e.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboards import auth, data
from dashboards import components as ui

who = auth.require_page("tracking", "Order tracking")

st.title("Order tracking")
st.caption(
    "One timeline per order across suppliers, warehouses, carriers and modes, normalised from "
    "each carrier's own format. Search by order id, tracking reference or customer id."
)

term = st.text_input(
    "Order id, tracking reference or customer id",
    key="track_search",
    placeholder="e.g. ORD-00012345, a carrier's tracking ref, CUS-0001234",
    max_chars=data.MAX_SEARCH_LENGTH * 2,
)


def _pick_order() -> str | None:
    """The order to show: from the search box, or the query string (?order=...)."""
    if not term:
        linked = st.query_params.get("order")
        return data.clean_search(linked) if linked else None
    try:
        hits = data.find_orders(term)
    except data.DataUnavailable as exc:
        ui.show_unavailable(str(exc))
        st.stop()
    if hits.empty:
        st.warning(
            "Not found: no order, tracking reference or customer matches exactly.",
            icon=":material/search_off:",
        )
        return None
    if len(hits) == 1:
        return str(hits.iloc[0]["order_id"])
    matches = int(hits.iloc[0]["matches"])
    listed = "" if matches == len(hits) else f"; the {len(hits)} most recent are listed"
    st.write(f"{matches:,} orders match ({hits.iloc[0]['matched_on']}){listed}. Pick one:")
    labels = {
        row.order_id: f"{row.order_id} · {pd.Timestamp(row.order_date):%Y-%m-%d} · "
        f"{row.order_status} · "
        f"{ui.fmt_money(row.order_total, row.currency or 'EUR')}"
        for row in hits.itertuples()
    }
    return st.selectbox("Order", list(labels), format_func=labels.get, key="track_pick")


order_id = _pick_order()
if order_id is None:
    if not term:
        st.info(
            "Type an order id, a tracking reference or a customer id above.",
            icon=":material/search:",
        )
    st.stop()

data.prefetch(
    (data.order_overview, order_id),
    (data.order_timeline, order_id),
    (data.order_legs, order_id),
    (data.order_alerts, order_id),
    (data.order_exceptions, order_id),
    (data.order_events, order_id),
)
try:
    overview = data.order_overview(order_id)
except data.DataUnavailable as exc:
    ui.show_unavailable(str(exc))
    st.stop()
if overview.empty:
    st.warning("Not found: no order, tracking reference or customer matches exactly.")
    st.stop()
order = overview.iloc[0]
currency = order["currency"] or "EUR"

# -- headline ------------------------------------------------------------------------------------
st.subheader(f"Order {order_id}")
late_warning = (
    bool(order["is_predicted_late"]) if not pd.isna(order["is_predicted_late"]) else False
)
# cards as wide as their values, wrapping onto a second line on a narrow screen (five equal
# columns cut dates and amounts short: "2026-0...")
cards = st.container(horizontal=True)
cards.metric("Status", str(order["order_status"]).replace("_", " "), border=True, width="content")
cards.metric(
    "Promised by",
    f"{pd.Timestamp(order['promised_delivery_date']):%Y-%m-%d}"
    if not pd.isna(order["promised_delivery_date"])
    else "—",
    help=f"Promise: {order['promise_type']}",
    border=True,
    width="content",
)
if order["is_delivered"]:
    days_late = order["days_late"]
    cards.metric(
        "Delivered",
        pd.Timestamp(order["delivered_at"]).strftime("%Y-%m-%d %H:%M")
        if not pd.isna(order["delivered_at"])
        else "yes",
        delta=None if pd.isna(days_late) or days_late <= 0 else f"{int(days_late)} d late",
        delta_color="inverse",
        border=True,
        width="content",
    )
else:
    eta = order["eta_at"]
    cards.metric(
        "ETA",
        pd.Timestamp(eta).strftime("%Y-%m-%d %H:%M") if not pd.isna(eta) else "—",
        delta=None
        if pd.isna(order["eta_hours_vs_promise"])
        else ui.fmt_hours(order["eta_hours_vs_promise"]) + " vs promise",
        delta_color="inverse",
        help="The ETA model's latest prediction (UTC), against the end of the promised day.",
        border=True,
        width="content",
    )
cards.metric(
    "Order value", ui.fmt_money(order["order_total"], currency), border=True, width="content"
)
cards.metric(
    "CO2e",
    ui.fmt_kg(order["kg_co2e"]),
    help="Well-to-wheel, GLEC / ISO 14083, allocated by weight and distance.",
    border=True,
    width="content",
)
st.caption(
    f"Customer {order['customer_id']} · {order['channel']} · shipped from "
    f"{order['primary_warehouse_id']} ({order['warehouse_name'] or '—'}) · last mile "
    f"{order['last_mile_carrier_name'] or order['last_mile_carrier_id'] or '—'} · route "
    f"{str(order['route_modes']).replace('>', ' → ') if order['route_modes'] else '—'}"
)
if order["is_cancelled"]:
    st.info(f"Cancelled: {order['cancellation_reason'] or 'no reason given'}.")
elif late_warning and not order["is_delivered"]:
    st.warning(
        "Delay warning: the predicted delivery is after the promised day "
        f"({ui.fmt_hours(order['eta_hours_vs_promise'])} late).",
        icon=":material/schedule:",
    )

# -- timeline ------------------------------------------------------------------------------------
timeline = data.order_timeline(order_id)
st.subheader("Timeline: planned vs actual")
if timeline.empty:
    st.info("No milestones for this order yet.")
else:
    frame = timeline.assign(
        step=lambda t: (
            t["milestone"].str.replace("_", " ")
            + t["mode"].fillna("").map(lambda m: f" ({m})" if m else "")
        ),
    )
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=frame["planned_at"],
            y=frame["step"],
            mode="markers",
            name="planned",
            marker={"symbol": "circle-open", "size": 12, "color": ui.COLOR_OK},
        )
    )
    fig.add_trace(
        go.Scatter(
            x=frame["actual_at"],
            y=frame["step"],
            mode="markers",
            name="actual",
            marker={
                "size": 10,
                "color": [
                    ui.COLOR_BAD if late else "#2ca02c" for late in frame["is_late"].fillna(False)
                ],
            },
            text=frame["delay_hours"].map(ui.fmt_hours),
            hovertemplate="%{y}: %{x}<br>delay %{text}<extra></extra>",
        )
    )
    fig.update_layout(
        height=max(260, 28 * len(frame) + 80),
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        yaxis={"autorange": "reversed", "title": None},
        xaxis={"title": "UTC"},
        legend={"orientation": "h"},
    )
    st.plotly_chart(fig, width="stretch")
    shown = frame[
        [
            "milestone",
            "shipment_id",
            "carrier_name",
            "mode",
            "location_name",
            "milestone_status",
            "planned_at",
            "actual_at",
            "delay_hours",
        ]
    ]
    st.dataframe(
        shown.style.apply(ui.row_styles(frame["is_late"].fillna(False)), axis=None),
        hide_index=True,
        width="stretch",
        column_config={"delay_hours": st.column_config.NumberColumn("delay h", format="%.1f")},
    )

# -- map of the legs -----------------------------------------------------------------------------
legs = data.order_legs(order_id)
left, right = st.columns([3, 2])
with left:
    st.subheader("Route")
    located = legs.dropna(
        subset=["origin_lat", "origin_lon", "destination_lat_approx", "destination_lon_approx"]
    )
    if located.empty:
        st.info("No legs with positions yet.")
    else:
        import pydeck as pdk

        arcs = located.assign(
            color=located["mode"].map(lambda m: ui.hex_to_rgb(ui.MODE_COLORS.get(m, "#888888"))),
            label=located["mode"] + " · " + located["carrier_name"].fillna(located["carrier_id"]),
        )
        points = pd.concat(
            [
                arcs[["origin_name", "origin_lat", "origin_lon"]].set_axis(
                    ["name", "lat", "lon"], axis=1
                ),
                arcs[
                    ["destination_hub_name", "destination_lat_approx", "destination_lon_approx"]
                ].set_axis(["name", "lat", "lon"], axis=1),
            ]
        ).drop_duplicates()
        points["name"] = points["name"].fillna("destination (~1 km)")
        # places are named in the tooltip, not by a TextLayer (its font atlas costs ~1.7 s
        # per render in headless Chromium)
        points["label"] = points["name"]
        layers = [
            pdk.Layer(
                "ArcLayer",
                arcs,
                get_source_position=["origin_lon", "origin_lat"],
                get_target_position=["destination_lon_approx", "destination_lat_approx"],
                get_source_color="color",
                get_target_color="color",
                get_width=4,
                pickable=True,
            ),
            pdk.Layer(
                "ScatterplotLayer",
                points,
                get_position=["lon", "lat"],
                get_radius=6000,
                radius_min_pixels=4,
                get_fill_color=[30, 30, 30, 220],
                pickable=True,
            ),
        ]
        view = ui.view_state(list(points["lat"]), list(points["lon"]))
        st.pydeck_chart(ui.deck(layers, view, {"text": "{label}"}), height=380)
        st.caption(
            "Arcs coloured by mode: "
            + ", ".join(f"{m} {c}" for m, c in ui.MODE_COLORS.items() if m in set(arcs["mode"]))
        )
with right:
    st.subheader("Legs")
    if legs.empty:
        st.info("No shipment legs yet.")
    else:
        st.dataframe(
            legs[
                [
                    "leg_no",
                    "mode",
                    "carrier_name",
                    "tracking_ref",
                    "leg_status",
                    "origin_name",
                    "destination_hub_name",
                    "distance_km",
                    "kg_co2e",
                    "arrival_delay_hours",
                ]
            ],
            hide_index=True,
            width="stretch",
            column_config={
                "kg_co2e": st.column_config.NumberColumn("kg CO2e", format="%.2f"),
                "distance_km": st.column_config.NumberColumn("km", format="%.0f"),
                "arrival_delay_hours": st.column_config.NumberColumn(
                    "arrival delay h", format="%.1f"
                ),
            },
        )

# -- alternatives when late ----------------------------------------------------------------------
alerts = data.order_alerts(order_id)
exceptions = data.order_exceptions(order_id)
at_risk = late_warning or (not alerts.empty and bool(alerts["promise_at_risk"].fillna(False).any()))
if not alerts.empty:
    st.subheader("Alerts and alternatives")
    latest = alerts.iloc[0]
    options = ui.parse_alternatives(latest["alternatives_json"])
    st.write(
        f"**{latest['severity']}** · {latest['rule']} ({latest['reason']}) detected "
        f"{pd.Timestamp(latest['detected_at']):%Y-%m-%d %H:%M} UTC · recommended: "
        f"**{latest['recommended_action'] or latest['recommended_option']}** · customer message "
        f"{latest['message_status']}"
    )
    if not options.empty:
        st.dataframe(
            options,
            hide_index=True,
            width="stretch",
            column_config={
                "cost_eur": st.column_config.NumberColumn("extra cost EUR", format="%.2f"),
                "kg_co2e": st.column_config.NumberColumn("kg CO2e", format="%.2f"),
                "meets_promise": st.column_config.CheckboxColumn("meets promise"),
                "score": st.column_config.NumberColumn("score (lower is better)", format="%.2f"),
            },
        )
    if len(alerts) > 1:
        with st.expander(f"All {len(alerts)} alerts"):
            st.dataframe(
                alerts.drop(columns=["alternatives_json"]), hide_index=True, width="stretch"
            )
elif at_risk or (not exceptions.empty and exceptions["is_open"].any()):
    st.subheader("Alternatives")
    st.write(
        "No live alert was raised for this order; its green and current options from the order's "
        "legs:"
    )
    st.dataframe(
        pd.DataFrame(
            [
                {"option": "keep the current route", "kg CO2e": order["kg_co2e"], "extra days": 0},
                {
                    "option": "green delivery",
                    "kg CO2e": order["green_option_kg_co2e"],
                    "extra days": order["green_option_extra_days"],
                },
            ]
        ),
        hide_index=True,
    )
if not exceptions.empty:
    with st.expander(
        f"Exception episodes ({len(exceptions)})", expanded=bool(exceptions["is_open"].any())
    ):
        st.dataframe(exceptions, hide_index=True, width="stretch")

# -- carrier events --------------------------------------------------------------------------------
events = data.order_events(order_id)
with st.expander(
    f"Carrier events ({len(events)}), canonical code beside the carrier's own", expanded=False
):
    st.dataframe(events, hide_index=True, width="stretch")
