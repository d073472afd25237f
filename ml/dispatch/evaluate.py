"""What a plan means: its shipments, each order's cost, CO2e and delivery day, the wave's KPIs,
and an independent check that it respects stock and capacity.

The same functions measure the optimised plan and the baseline, so the comparison is fair.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml.dispatch.allocate import Plan
from ml.dispatch.network import delivery_dates
from ml.dispatch.wave import Wave


def shipments(wave: Wave, plan: Plan) -> pd.DataFrame:
    """One row per shipment: (order, warehouse, variant, deferred) with units, weight, cost,
    CO2e, modes, ship and delivery dates."""
    li = wave.lines
    ok = plan.line_wh >= 0
    frame = pd.DataFrame(
        {
            "order_idx": li["order_idx"].to_numpy()[ok],
            "wh": plan.line_wh[ok],
            "variant": plan.line_variant[ok],
            "deferred": plan.line_deferred[ok],
            "units": li["quantity"].to_numpy()[ok],
            "weight_kg": li["line_weight_kg"].to_numpy()[ok],
            "lines": 1,
        }
    )
    ship = (
        frame.groupby(["order_idx", "wh", "variant", "deferred"], as_index=False)[
            ["units", "weight_kg", "lines"]
        ]
        .sum()
        .sort_values(["order_idx", "wh"])
        .reset_index(drop=True)
    )
    order_idx = ship["order_idx"].to_numpy()
    variant = ship["variant"].to_numpy()
    lanes = wave.lane(order_idx, ship["wh"].to_numpy(), variant)
    weight = ship["weight_kg"].to_numpy()
    rows = np.arange(len(ship))
    ship["cost_eur"] = lanes.cost_eur(weight, variant)
    ship["kg_co2e"] = lanes.kg_co2e(weight, variant)
    ship["modes"] = lanes.modes[rows, variant]
    ship["distance_km"] = lanes.distance_km[rows, variant]
    ship_date = wave.orders["ship_date"].to_numpy("datetime64[D]")[order_idx]
    ship_date = ship_date + ship["deferred"].to_numpy().astype("timedelta64[D]")
    ship["ship_date"] = ship_date
    ship["delivery_date"] = delivery_dates(ship_date, lanes.transit_days[rows, variant])
    ship["warehouse_id"] = wave.network.warehouses["warehouse_id"].to_numpy()[ship["wh"]]
    return ship


def order_outcomes(wave: Wave, plan: Plan, ships: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per order: shipments, cost, CO2e, delivery day, promise kept, back-ordered lines."""
    ships = shipments(wave, plan) if ships is None else ships
    o = wave.orders
    per = ships.groupby("order_idx").agg(
        shipments=("wh", "size"),
        cost_eur=("cost_eur", "sum"),
        kg_co2e=("kg_co2e", "sum"),
        delivery_date=("delivery_date", "max"),
        deferred=("deferred", "any"),
    )
    unfilled = np.bincount(wave.lines["order_idx"].to_numpy()[plan.line_wh < 0], minlength=len(o))
    out = pd.DataFrame(
        {
            "order_id": o["order_id"],
            "promise_type": o["promise_type"],
            "promised_date": o["promised"],
            "can_meet_promise": wave.can_meet_promise,
            "units": wave.lines.groupby("order_idx")["quantity"].sum().reindex(o.index).to_numpy(),
        }
    )
    out = out.join(per, how="left")
    out["shipments"] = out["shipments"].fillna(0).astype(int)
    out["cost_eur"] = out["cost_eur"].fillna(0.0)
    out["kg_co2e"] = out["kg_co2e"].fillna(0.0)
    out["deferred"] = out["deferred"].astype("boolean").fillna(False).astype(bool)
    out["unfilled_lines"] = unfilled
    delivered = pd.to_datetime(out["delivery_date"])
    out["on_time"] = (
        (out["unfilled_lines"] == 0)
        & delivered.notna()
        & (delivered <= pd.to_datetime(out["promised_date"]))
    )
    out["is_split"] = out["shipments"] > 1
    return out


def summarise(wave: Wave, plan: Plan, outcomes: pd.DataFrame, ships: pd.DataFrame) -> dict:
    """The wave's KPIs for one plan (the columns of ml.dispatch_waves)."""
    n = max(len(outcomes), 1)
    units = max(int(outcomes["units"].sum()), 1)
    next_day = outcomes["promise_type"] == "next_day"
    feasible_nd = next_day & outcomes["can_meet_promise"]
    today = ships[~ships["deferred"]]
    used = np.bincount(today["wh"], weights=today["units"], minlength=len(wave.capacity))
    util = used / np.maximum(wave.capacity, 1)
    return {
        "plan": plan.name,
        "orders": int(len(outcomes)),
        "lines": int(len(wave.lines)),
        "units": int(outcomes["units"].sum()),
        "shipments": int(len(ships)),
        "cost_eur": round(float(outcomes["cost_eur"].sum()), 2),
        "cost_per_order_eur": round(float(outcomes["cost_eur"].sum()) / n, 4),
        "cost_per_item_eur": round(float(outcomes["cost_eur"].sum()) / units, 4),
        "kg_co2e_per_order": round(float(outcomes["kg_co2e"].sum()) / n, 4),
        "promise_hit_rate": round(float(outcomes["on_time"].mean()), 4) if len(outcomes) else None,
        "next_day_orders": int(next_day.sum()),
        "next_day_hit_rate": _rate(outcomes["on_time"][next_day]),
        "next_day_hit_rate_feasible": _rate(outcomes["on_time"][feasible_nd]),
        "split_rate": round(float(outcomes["is_split"].mean()), 4) if len(outcomes) else None,
        "deferred_orders": int(outcomes["deferred"].sum()),
        "unfilled_lines": int(outcomes["unfilled_lines"].sum()),
        "green_share": round(float((ships["variant"] == 1).mean()), 4) if len(ships) else 0.0,
        "max_utilisation": round(float(util.max()), 4) if len(util) else 0.0,
        "utilisation": {
            w: round(float(u), 4)
            for w, u in zip(wave.network.warehouses["warehouse_id"], util, strict=True)
        },
        **{k: v for k, v in plan.stats.items() if k != "utilisation"},
    }


def _rate(values: pd.Series) -> float | None:
    return round(float(values.mean()), 4) if len(values) else None


def verify(wave: Wave, plan: Plan) -> list[str]:
    """Violations of the plan, checked from the line decisions alone (not from the solver):
    a line from a warehouse without its units, more units of a SKU than the warehouse holds,
    more units leaving a warehouse today than its outbound capacity."""
    li = wave.lines
    problems: list[str] = []
    allocated = plan.line_wh >= 0  # deferred lines reserve their units too
    used = np.zeros_like(wave.stock)
    np.add.at(
        used,
        (plan.line_wh[allocated], li["sku_idx"].to_numpy()[allocated]),
        li["quantity"].to_numpy()[allocated],
    )
    over = np.argwhere(used > wave.stock)
    names = wave.network.warehouses["warehouse_id"].to_numpy()
    for w, s in over[:20]:
        problems.append(
            f"{names[w]} ships {used[w, s]} units of {wave.skus[s]} but holds {wave.stock[w, s]}"
        )
    if len(over) > 20:
        problems.append(f"... and {len(over) - 20} more stock violations")
    today = allocated & ~plan.line_deferred
    out = np.bincount(
        plan.line_wh[today], weights=li["quantity"].to_numpy()[today], minlength=len(wave.capacity)
    )
    for w in np.flatnonzero(out > wave.capacity):
        problems.append(
            f"{names[w]} ships {int(out[w])} units today, over its capacity of {wave.capacity[w]}"
        )
    return problems
