"""Dispatch assets: thin wrappers around :mod:`ml.dispatch.pipeline`.

``dispatch_plan`` (daily: one wave per day) plans each wave with the optimiser and the baseline
rule side by side, stores both, and checks the plan independently (no allocation without
stock, no warehouse over its outbound capacity); ``route_plans`` (daily) routes the forward
warehouses' van deliveries of the optimised plan and checks every route with the solver-
independent checker. Savings against the baseline are the plan's metadata.
"""

from datetime import date, timedelta

import dagster as dg

from ml.dispatch import pipeline
from ml.dispatch.config import load_policy
from ordertower.settings import get_settings
from pipelines.defs.partitions import daily_partitions
from pipelines.defs.resources import LAKE_WRITER_POOL, LakeResource

GROUP = "dispatch"
#: the plan: every shipment of both plans, and each wave's KPIs per plan
SHIPMENTS = dg.AssetKey(["ml", "dispatch_shipments"])
WAVES = dg.AssetKey(["ml", "dispatch_waves"])
#: the van rounds: routes and their stops
ROUTES = dg.AssetKey(["ml", "route_plans"])
STOPS = dg.AssetKey(["ml", "route_stops"])


def _days(context: dg.AssetExecutionContext) -> list[date]:
    keys = context.partition_key_range
    first, last = date.fromisoformat(keys.start), date.fromisoformat(keys.end)
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _mean(results: list[dict], plan: str, key: str) -> float | None:
    """Order-weighted mean of a per-wave rate over the waves that had orders."""
    pairs = [
        (
            r[plan][key],
            r[plan]["orders"] if key != "next_day_hit_rate" else r[plan]["next_day_orders"],
        )
        for r in results
        if plan in r and r[plan].get(key) is not None
    ]
    weight = sum(w for _, w in pairs)
    return round(sum(v * w for v, w in pairs) / weight, 4) if weight else None


def savings_metadata(results: list[dict]) -> dict:
    """The plan against the baseline over the waves of a run (what the asset reports)."""
    planned = [r for r in results if "optimised" in r]
    out: dict = {"waves": len(results), "waves_with_orders": len(planned)}
    if not planned:
        return out
    orders = sum(r["optimised"]["orders"] for r in planned)
    for plan in ("optimised", "baseline"):
        cost = sum(r[plan]["cost_eur"] for r in planned)
        units = sum(r[plan]["units"] for r in planned)
        co2 = sum(r[plan]["kg_co2e_per_order"] * r[plan]["orders"] for r in planned)
        out[f"{plan}_cost_per_order_eur"] = round(cost / orders, 4)
        out[f"{plan}_cost_per_item_eur"] = round(cost / max(units, 1), 4)
        out[f"{plan}_kg_co2e_per_order"] = round(co2 / orders, 4)
        out[f"{plan}_next_day_hit_rate"] = _mean(planned, plan, "next_day_hit_rate")
        out[f"{plan}_promise_hit_rate"] = _mean(planned, plan, "promise_hit_rate")
        out[f"{plan}_split_rate"] = _mean(planned, plan, "split_rate")
    out["orders"] = orders
    out["saving_per_order_eur"] = round(
        out["baseline_cost_per_order_eur"] - out["optimised_cost_per_order_eur"], 4
    )
    out["max_proven_gap"] = max(float(r["optimised"].get("gap") or 0) for r in planned)
    out["solve_seconds_max"] = max(float(r["optimised"]["solve_seconds"]) for r in planned)
    return out


@dg.multi_asset(
    name="dispatch_plan",
    specs=[
        dg.AssetSpec(
            SHIPMENTS,
            group_name=GROUP,
            kinds={"ortools", "duckdb"},
            deps=[
                dg.AssetKey(["intermediate", "int_dispatch_lines"]),
                dg.AssetKey(["marts", "fct_inventory_daily"]),
                dg.AssetKey(["marts", "dim_warehouse"]),
            ],
            description="Every shipment of each wave's optimised plan (the OR-Tools MIP, "
            "docs/dispatch.md) and of the baseline rule; a re-run replaces the wave.",
        ),
        dg.AssetSpec(
            WAVES,
            group_name=GROUP,
            kinds={"ortools", "duckdb"},
            deps=[SHIPMENTS],
            description="Each wave's KPIs per plan (cost, CO2e, promise, splits, utilisation) and "
            "the solver's status, time and proven gap.",
        ),
    ],
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool=LAKE_WRITER_POOL,
    check_specs=[
        dg.AssetCheckSpec("no_allocation_without_stock", asset=SHIPMENTS, blocking=True),
        dg.AssetCheckSpec("no_capacity_exceeded", asset=SHIPMENTS, blocking=True),
        dg.AssetCheckSpec("plan_beats_baseline", asset=WAVES),
    ],
)
def dispatch_plan(context: dg.AssetExecutionContext, lake: LakeResource):
    con = lake.connect()
    try:
        results = pipeline.plan_waves(
            con,
            _days(context),
            load_policy(),
            log=context.log.info,
            workers=get_settings().dispatch_workers,
        )
    finally:
        con.close()
    meta = savings_metadata(results)
    shipped = sum(r.get("shipments", 0) for r in results)
    yield dg.MaterializeResult(asset_key=SHIPMENTS, metadata={"shipments": shipped, **meta})
    yield dg.MaterializeResult(asset_key=WAVES, metadata=meta)
    stock = [v for r in results for v in r["violations"] if "holds" in v]
    capacity = [v for r in results for v in r["violations"] if "capacity" in v]
    yield dg.AssetCheckResult(
        asset_key=SHIPMENTS,
        check_name="no_allocation_without_stock",
        passed=not stock,
        metadata={"violations": len(stock), "first": "; ".join(stock[:5]) or "none"},
    )
    yield dg.AssetCheckResult(
        asset_key=SHIPMENTS,
        check_name="no_capacity_exceeded",
        passed=not capacity,
        metadata={"violations": len(capacity), "first": "; ".join(capacity[:5]) or "none"},
    )
    worse = [
        r["wave_date"]
        for r in results
        if "optimised" in r
        and r["optimised"]["cost_per_order_eur"] > r["baseline"]["cost_per_order_eur"] + 1e-9
    ]
    nd_opt, nd_base = (
        meta.get("optimised_next_day_hit_rate"),
        meta.get("baseline_next_day_hit_rate"),
    )
    yield dg.AssetCheckResult(
        asset_key=WAVES,
        check_name="plan_beats_baseline",
        passed=not worse and (nd_opt is None or nd_base is None or nd_opt >= nd_base),
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "waves_costlier_than_baseline": ", ".join(worse) or "none",
            "next_day_hit_rate": f"{nd_opt} vs {nd_base} (baseline)",
        },
    )


@dg.multi_asset(
    name="route_plans",
    specs=[
        dg.AssetSpec(
            ROUTES,
            group_name=GROUP,
            kinds={"pyvrp", "duckdb"},
            deps=[SHIPMENTS],
            description="Van routes (VRPTW: capacity, delivery windows, service times) of each "
            "forward warehouse per wave, from the optimised plan.",
        ),
        dg.AssetSpec(
            STOPS,
            group_name=GROUP,
            kinds={"pyvrp", "duckdb"},
            deps=[ROUTES],
            description="The van routes' stops in visiting order with windows and planned arrivals.",
        ),
    ],
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool=LAKE_WRITER_POOL,
    check_specs=[dg.AssetCheckSpec("every_route_feasible", asset=ROUTES)],
)
def route_plans(context: dg.AssetExecutionContext, lake: LakeResource):
    policy = load_policy()
    con = lake.connect()
    try:
        results = pipeline.route_waves(
            con, _days(context), policy, get_settings().routing_workers, log=context.log.info
        )
    finally:
        con.close()
    bad = [(r["wave_date"], b) for r in results for b in r["infeasible_rounds"]]
    meta = {
        "waves": len(results),
        "rounds": sum(r["rounds"] for r in results),
        "routes": sum(r["routes"] for r in results),
        "stops": sum(r["stops"] for r in results),
        "distance_km": round(sum(r["distance_km"] for r in results), 1),
        "engine": policy.routing.engine,
        "solve_seconds": round(sum(r["seconds"] for r in results), 1),
    }
    yield dg.MaterializeResult(asset_key=ROUTES, metadata=meta)
    yield dg.MaterializeResult(asset_key=STOPS, metadata={"stops": meta["stops"]})
    yield dg.AssetCheckResult(
        asset_key=ROUTES,
        check_name="every_route_feasible",
        passed=not bad,
        metadata={
            "infeasible_rounds": len(bad),
            "first": "; ".join(
                f"{d} {b['warehouse_id']}: {b['violations'][:2]}" for d, b in bad[:5]
            )
            or "none",
        },
    )
