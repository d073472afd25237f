"""What operations can do about an alerted shipment, each option priced in money, time and CO2e.

Options (computed with the dispatch planner's network, ``ml/dispatch/network.py``, and its
objective prices, ``ml/dispatch/policy.yaml``: nothing here re-implements a lane):

* ``keep``: wait for the current plan, delivered when the ETA says; for a lost or damaged
  parcel (goods write-off share 1) there is nothing to wait for and ``refund`` (the order's
  value) takes its place, the goods being sunk whatever is done;
* ``reship``: send a replacement from a warehouse that holds every unit of the shipment (the
  nearest ``reship_candidates`` such warehouses), on the standard lane, leaving at the next
  cut-off; the goods written off are part of its cost;
* ``expedite``: the best reship leaving today whatever the cut-off, for a handling fee;
* ``green``: the best reship on the lane's lower-carbon variant (rail / sea line-haul), when it
  exists: slower, cheaper in CO2e.

Each option is scored like the planner scores a plan: cost + carbon price x CO2e + the penalty
for a missed promise of the shipment's service level. The recommendation is the lowest score.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd

from ml.alerts.rules import AlternativesPolicy
from ml.dispatch.config import DispatchPolicy
from ml.dispatch.network import GREEN, STD, Network, delivery_dates

CONTEXT_COLUMNS = (
    "alert_id",
    "rule",
    "shipment_id",
    "warehouse_id",
    "service_level",
    "total_weight_kg",
    "promised_delivery_date",
    "eta_at",
    "dest_lat",
    "dest_lon",
    "dest_country",
    "dest_eu",
    "order_value_eur",
)


def _ship_day(clock: datetime, cutoff_hour: int, today_regardless: bool) -> date:
    day = clock.date()
    return day if today_regardless or clock.hour < cutoff_hour else day + timedelta(days=1)


def _option(kind, warehouse, modes, cost, kg, delivered, promised, penalty, carbon_price):
    meets = delivered is not None and promised is not None and delivered <= promised
    score = cost + carbon_price * kg / 1000.0 + (0.0 if meets else penalty)
    return {
        "action": kind,
        "warehouse_id": warehouse,
        "modes": modes,
        "cost_eur": round(float(cost), 2),
        "kg_co2e": round(float(kg), 3),
        "delivery_date": delivered.isoformat() if delivered else None,
        "meets_promise": bool(meets),
        "score": round(float(score), 2),
    }


def _describe(option: dict) -> str:
    if option["action"] == "keep":
        when = option["delivery_date"] or "not expected"
        return f"keep the current plan (delivery {when}; no extra cost)"
    if option["action"] == "refund":
        return f"refund the order ({option['cost_eur']:.2f} EUR): no replacement can be sent"
    promise = "meets the promise" if option["meets_promise"] else "misses the promise"
    return (
        f"{option['action']} from {option['warehouse_id']} by {option['modes']}: "
        f"{option['cost_eur']:.2f} EUR, {option['kg_co2e']:.2f} kg CO2e, delivered "
        f"{option['delivery_date']} ({promise})"
    )


def price_alternatives(
    context: pd.DataFrame,
    lines: pd.DataFrame,
    stock: pd.DataFrame,
    network: Network,
    dispatch: DispatchPolicy,
    policy: AlternativesPolicy,
    clock: datetime,
) -> pd.DataFrame:
    """One row per alert: ``alternatives`` (JSON list, best first), ``recommended_action``
    (a sentence), ``recommended_option`` (the action's name).

    ``context``: CONTEXT_COLUMNS per alert; ``lines``: shipment_id, sku_id, quantity;
    ``stock``: warehouse_id, sku_id, available_qty (the latest snapshot)."""
    if context.empty:
        return pd.DataFrame(
            columns=["alert_id", "alternatives", "recommended_action", "recommended_option"]
        )
    carbon_price = dispatch.objective.carbon_price_eur_per_t
    penalties = dispatch.objective.promise_miss_eur
    cutoff = dispatch.network.cutoff_local_hour
    # which warehouses hold every unit of each shipment
    need = lines.groupby(["shipment_id", "sku_id"], as_index=False)["quantity"].sum()
    have = need.merge(stock, on="sku_id", how="inner")
    have = have[have["available_qty"] >= have["quantity"]]
    covered = have.groupby(["shipment_id", "warehouse_id"]).size().rename("skus").reset_index()
    n_skus = need.groupby("shipment_id").size().rename("needed")
    covered = covered.join(n_skus, on="shipment_id")
    able = (
        covered[covered["skus"] == covered["needed"]]
        .groupby("shipment_id")["warehouse_id"]
        .apply(list)
    )

    rows = []
    for ctx in context.itertuples(index=False):
        promised = ctx.promised_delivery_date
        promised = promised.date() if isinstance(promised, datetime | pd.Timestamp) else promised
        penalty = float(penalties.get(ctx.service_level, penalties.get("standard", 10.0)))
        value = float(ctx.order_value_eur or 0.0)
        share = policy.write_off(ctx.rule)
        if share >= 1.0:
            # the goods are gone whatever we do (sunk): the choice is a refund or a replacement
            write_off = 0.0
            first = _option("refund", None, None, value, 0.0, None, promised, penalty, carbon_price)
        else:
            # a replacement costs goods the returning original may not cover
            write_off = share * value
            eta = None if pd.isna(ctx.eta_at) else pd.Timestamp(ctx.eta_at).date()
            # not delivered yet: an ETA already past means tomorrow at the earliest
            eta = None if eta is None else max(eta, clock.date() + timedelta(days=1))
            first = _option("keep", None, None, 0.0, 0.0, eta, promised, penalty, carbon_price)
        options = [first]
        candidates = [w for w in able.get(ctx.shipment_id, []) if w in network.index]
        if candidates:
            wh = np.array([network.index[w] for w in candidates])
            n = len(wh)
            lanes = network.lanes(
                np.full(n, ctx.dest_lat),
                np.full(n, ctx.dest_lon),
                np.full(n, ctx.dest_country, dtype=object),
                np.full(n, bool(ctx.dest_eu)),
                wh,
            )
            weight = np.full(n, float(ctx.total_weight_kg or 1.0))
            std = np.full(n, STD)
            cost = lanes.cost_eur(weight, std)
            kg = lanes.kg_co2e(weight, std)
            order = np.argsort(
                network.straight_km(np.full(n, ctx.dest_lat), np.full(n, ctx.dest_lon), wh)
            )
            order = order[: max(1, policy.reship_candidates)]
            regular = _ship_day(clock, cutoff, False)
            today = _ship_day(clock, cutoff, True)
            for k in order:
                days = lanes.transit_days[k, STD]
                delivered = delivery_dates(np.array([regular]), np.array([days]))[0].item()
                options.append(
                    _option(
                        "reship",
                        candidates[k],
                        lanes.modes[k, STD],
                        cost[k] + write_off,
                        kg[k],
                        delivered,
                        promised,
                        penalty,
                        carbon_price,
                    )
                )
            best = order[0]
            fast = delivery_dates(np.array([today]), np.array([lanes.transit_days[best, STD]]))[
                0
            ].item()
            options.append(
                _option(
                    "expedite",
                    candidates[best],
                    lanes.modes[best, STD],
                    cost[best] + write_off + policy.expedite_fee_eur,
                    kg[best],
                    fast,
                    promised,
                    penalty,
                    carbon_price,
                )
            )
            if lanes.available[best, GREEN]:
                g = np.full(n, GREEN)
                green_day = delivery_dates(
                    np.array([regular]), np.array([lanes.transit_days[best, GREEN]])
                )[0].item()
                options.append(
                    _option(
                        "green",
                        candidates[best],
                        lanes.modes[best, GREEN],
                        lanes.cost_eur(weight, g)[best] + write_off,
                        lanes.kg_co2e(weight, g)[best],
                        green_day,
                        promised,
                        penalty,
                        carbon_price,
                    )
                )
        options.sort(key=lambda o: (o["score"], o["kg_co2e"]))
        rows.append(
            {
                "alert_id": ctx.alert_id,
                "alternatives": json.dumps(options),
                "recommended_action": _describe(options[0]),
                "recommended_option": options[0]["action"],
            }
        )
    return pd.DataFrame(rows)


def latest_stock(con) -> pd.DataFrame:
    """Units available per warehouse and SKU in the latest inventory snapshot of the lake."""
    return con.execute(
        """
        select warehouse_id, sku_id, available_qty
        from marts.fct_inventory_daily
        where snapshot_date = (select max(snapshot_date) from marts.fct_inventory_daily)
        """
    ).df()


__all__ = ["CONTEXT_COLUMNS", "latest_stock", "price_alternatives"]
