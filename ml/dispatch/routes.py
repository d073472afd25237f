"""Last-mile van rounds: one VRPTW per forward warehouse and wave, from the optimised plan.

The stops are the wave's direct van deliveries (lane ``last_mile``) leaving a forward warehouse
that day. Coordinates are the destinations' approximate positions projected to kilometres
around the warehouse; road distance is the straight line times the van detour, travel time that
distance at the van's speed. Customers get a delivery window (morning, afternoon or all day,
stable per order); vans leave at ``depart_hour`` and must be back by ``return_by_hour``. The
routing engines (``ml.dispatch.routing``) solve it and the independent checker verifies every
route. Emissions of a round: its kilometres times the van's intensity per vehicle-km is not in
the DEFRA per-tonne-km seed, so a round's CO2e is the tonne-km it carries times the van factor
(the same allocation as the shipment legs).
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime

import numpy as np
import pandas as pd

from ml.dispatch.config import DispatchPolicy
from ml.dispatch.network import Network
from ml.dispatch.routing.engines import Solution, solve
from ml.dispatch.routing.instance import Instance

KM_PER_DEG_LAT = 110.574
KM_PER_DEG_LON_EQUATOR = 111.320
#: delivery windows (minutes after midnight) a customer may book
WINDOWS = ((480, 780), (780, 1140), (480, 1200))


@dataclass
class RoundProblem:
    warehouse_id: str
    instance: Instance
    stops: pd.DataFrame  # one row per customer 1..N: order_id, lat, lon, load_kg, window


def _window(order_id: str) -> tuple[int, int]:
    digest = hashlib.sha1(order_id.encode()).digest()[0]
    return WINDOWS[digest % len(WINDOWS)]


def build_round(
    warehouse_id: str,
    depot: tuple[float, float],
    stops: pd.DataFrame,
    policy: DispatchPolicy,
) -> RoundProblem:
    """The VRPTW of one warehouse's van deliveries (``stops``: order_id, ship_lat, ship_lon,
    weight_kg)."""
    pol, net = policy.routing, policy.network
    lat = np.r_[depot[0], stops["ship_lat"].to_numpy(float)]
    lon = np.r_[depot[1], stops["ship_lon"].to_numpy(float)]
    x = (lon - depot[1]) * KM_PER_DEG_LON_EQUATOR * math.cos(math.radians(depot[0]))
    y = (lat - depot[0]) * KM_PER_DEG_LAT
    coords = np.c_[x, y]
    straight = np.sqrt(((coords[:, None, :] - coords[None, :, :]) ** 2).sum(axis=2))
    km = np.round(straight * net.detour["last_mile"], 1)
    minutes = np.round(km / pol.van_speed_kmh * 60, 1)
    weight = np.maximum(1, np.ceil(stops["weight_kg"].to_numpy(float))).astype(np.int64)
    capacity = int(pol.van_capacity_kg)
    demand = np.r_[0, np.minimum(weight, capacity)]
    start, end = pol.depart_hour * 60, pol.return_by_hour * 60
    windows = np.array([_window(o) for o in stops["order_id"]], dtype=float).reshape(-1, 2)
    # a customer far out cannot be offered a morning slot: the earliest arrival decides
    earliest = start + minutes[0, 1:]
    unreachable = earliest > windows[:, 1]
    windows[unreachable] = (WINDOWS[-1][0], max(WINDOWS[-1][1], 0))
    windows[:, 1] = np.maximum(windows[:, 1], earliest)
    ready = np.r_[start, windows[:, 0]]
    due = np.r_[end, windows[:, 1]]
    service = np.r_[0.0, np.full(len(stops), pol.service_minutes)]
    vehicles = max(math.ceil(demand.sum() / capacity), math.ceil(len(stops) / 8)) + 3
    instance = Instance(
        name=f"{warehouse_id}",
        coords=coords,
        distance=km,
        duration=minutes,
        demand=demand,
        capacity=capacity,
        ready=ready,
        due=due,
        service=service,
        num_vehicles=vehicles,
        scale=10,
    )
    frame = stops[["order_id", "ship_lat", "ship_lon", "weight_kg"]].reset_index(drop=True)
    frame = frame.rename(columns={"ship_lat": "lat", "ship_lon": "lon", "weight_kg": "load_kg"})
    frame["window_start_min"] = ready[1:]
    frame["window_end_min"] = due[1:]
    return RoundProblem(warehouse_id, instance, frame)


def time_limit(policy: DispatchPolicy, stops: int) -> float:
    pol = policy.routing
    return float(min(pol.max_time_limit_s, max(0.3, stops / 100 * pol.time_limit_s_per_100_stops)))


def _arrivals(instance: Instance, route: list[int]) -> list[float]:
    clock, prev, out = float(instance.ready[0]), 0, []
    for c in route:
        clock = max(float(instance.ready[c]), clock + float(instance.duration[prev, c]))
        out.append(clock)
        clock += float(instance.service[c])
        prev = c
    return out


def solve_round(
    problem: RoundProblem, wave_date: date, policy: DispatchPolicy, van_g_per_tkm: float
) -> tuple[Solution, pd.DataFrame, pd.DataFrame]:
    inst = problem.instance
    started = time.perf_counter()
    solution = solve(
        inst,
        engine=policy.routing.engine,
        time_limit=time_limit(policy, inst.num_customers),
        stall_iterations=policy.routing.stall_iterations,
    )
    seconds = time.perf_counter() - started
    planned_at = datetime.now(UTC)
    routes, stops = [], []
    for v, route in enumerate(solution.routes, start=1):
        route_id = f"{wave_date:%Y%m%d}-{problem.warehouse_id}-{v:02d}"
        path = [0, *route, 0]
        km = float(sum(inst.distance[a, b] for a, b in zip(path, path[1:], strict=False)))
        arrivals = _arrivals(inst, route)
        loads = problem.stops["load_kg"].to_numpy(float)[np.array(route) - 1]
        # tonne-km carried: each parcel from the depot to its stop along the round
        carried = np.cumsum(
            [inst.distance[a, b] for a, b in zip(path[:-2], path[1:-1], strict=True)]
        )
        tkm = float((loads / 1000 * carried).sum())
        end = arrivals[-1] + float(inst.service[route[-1]]) + float(inst.duration[route[-1], 0])
        routes.append(
            {
                "wave_date": wave_date,
                "route_id": route_id,
                "warehouse_id": problem.warehouse_id,
                "vehicle_no": v,
                "engine": solution.engine,
                "stops": len(route),
                "load_kg": float(loads.sum()),
                "distance_km": round(km, 2),
                "duration_min": round(end - float(inst.ready[0]), 1),
                "start_min": float(inst.ready[0]),
                "end_min": round(end, 1),
                "kg_co2e": round(tkm * van_g_per_tkm / 1000, 6),
                "is_feasible": bool(solution.feasible),
                "solve_seconds": round(seconds, 3),
                "planned_at": planned_at,
            }
        )
        for n, (c, arr) in enumerate(zip(route, arrivals, strict=True), start=1):
            row = problem.stops.iloc[c - 1]
            stops.append(
                {
                    "wave_date": wave_date,
                    "route_id": route_id,
                    "stop_no": n,
                    "order_id": row["order_id"],
                    "warehouse_id": problem.warehouse_id,
                    "lat": float(row["lat"]),
                    "lon": float(row["lon"]),
                    "load_kg": float(row["load_kg"]),
                    "window_start_min": float(row["window_start_min"]),
                    "window_end_min": float(row["window_end_min"]),
                    "arrival_min": round(arr, 1),
                }
            )
    return solution, pd.DataFrame(routes), pd.DataFrame(stops)


def van_rounds(ships: pd.DataFrame, network: Network) -> dict[str, pd.DataFrame]:
    """The optimised plan's van deliveries leaving forward warehouses today, per warehouse."""
    wh = network.warehouses.set_index("warehouse_id")
    forward = set(wh.index[wh["warehouse_type"] == "forward"]) if "warehouse_type" in wh else set()
    sel = ships[
        (ships["plan"] == "optimised")
        & ~ships["is_deferred"].astype(bool)
        & (ships["modes"] == "last_mile")
        & ships["warehouse_id"].isin(forward)
    ]
    return {w: g.sort_values("order_id") for w, g in sel.groupby("warehouse_id")}


def depot_of(network: Network, warehouse_id: str) -> tuple[float, float]:
    i = network.index[warehouse_id]
    return float(network.wh_lat[i]), float(network.wh_lon[i])
