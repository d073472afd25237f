"""Plan a wave end to end: load it from the lake, run the baseline and the optimiser, measure both
with the same code, verify the plan independently, and write the results (replacing the wave;
one transaction per table for a batch of waves). The Dagster assets are thin wrappers around
these functions."""

from __future__ import annotations

import collections
import contextlib
import json
import multiprocessing
from collections.abc import Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime

import duckdb
import numpy as np
import pandas as pd

from ml.dispatch import routes, store
from ml.dispatch.allocate import Plan, baseline_plan, optimise
from ml.dispatch.config import DispatchPolicy, load_policy
from ml.dispatch.evaluate import order_outcomes, shipments, summarise, verify
from ml.dispatch.network import VARIANTS, Network
from ml.dispatch.wave import Wave

SUMMARY_KEYS = [
    "orders",
    "lines",
    "units",
    "shipments",
    "cost_eur",
    "cost_per_order_eur",
    "cost_per_item_eur",
    "kg_co2e_per_order",
    "promise_hit_rate",
    "next_day_orders",
    "next_day_hit_rate",
    "next_day_hit_rate_feasible",
    "split_rate",
    "deferred_orders",
    "unfilled_lines",
    "green_share",
    "max_utilisation",
]


def _shipment_frame(
    wave: Wave, plan: Plan, ships: pd.DataFrame, outcomes: pd.DataFrame
) -> pd.DataFrame:
    o = wave.orders
    idx = ships["order_idx"].to_numpy()
    frame = pd.DataFrame(
        {
            "wave_date": pd.Timestamp(wave.wave_date).date(),
            "plan": plan.name,
            "order_id": o["order_id"].to_numpy()[idx],
            "warehouse_id": ships["warehouse_id"].to_numpy(),
            "lane_variant": np.array(VARIANTS)[ships["variant"].to_numpy()],
            "modes": ships["modes"].astype(str).to_numpy(),
            "is_deferred": ships["deferred"].to_numpy(bool),
            "lines": ships["lines"].to_numpy(np.int64),
            "units": ships["units"].to_numpy(np.int64),
            "weight_kg": ships["weight_kg"].to_numpy(float).round(3),
            "distance_km": ships["distance_km"].to_numpy(float).round(2),
            "transport_cost_eur": ships["cost_eur"].to_numpy(float).round(4),
            "kg_co2e": ships["kg_co2e"].to_numpy(float).round(6),
            "ship_date": pd.to_datetime(ships["ship_date"]).dt.date,
            "planned_delivery_date": pd.to_datetime(ships["delivery_date"]).dt.date,
            "promised_delivery_date": pd.to_datetime(o["promised"].to_numpy()[idx]).date,
            "promise_type": o["promise_type"].to_numpy()[idx],
            "ship_lat": o["ship_lat"].to_numpy(float)[idx],
            "ship_lon": o["ship_lon"].to_numpy(float)[idx],
        }
    )
    frame["is_on_time"] = frame["planned_delivery_date"] <= frame["promised_delivery_date"]
    frame["is_split_order"] = (
        frame["order_id"].map(outcomes.set_index("order_id")["is_split"]).astype(bool)
    )
    return frame


def _wave_row(wave: Wave, summary: dict, planned_at: datetime) -> dict:
    row = {"wave_date": wave.wave_date, "plan": summary["plan"]}
    row.update({k: summary.get(k) for k in SUMMARY_KEYS})
    row["solver_status"] = str(summary.get("status", ""))
    row["solve_seconds"] = float(summary.get("solve_seconds") or 0.0)
    row["proven_gap"] = summary.get("gap")
    row["subproblems"] = summary.get("subproblems")
    row["utilisation_json"] = json.dumps(summary.get("utilisation", {}), sort_keys=True)
    row["planned_at"] = planned_at
    return row


def solve_wave(wave: Wave, planned_at: datetime | None = None, workers: int = 1) -> dict:
    """Baseline and optimised plans of a loaded wave, measured the same way (no lake access, so
    waves can be solved in worker processes). Returns the rows to store and the summaries.
    ``workers``: processes for the regions of a large wave (:func:`allocate.optimise`)."""
    planned_at = planned_at or datetime.now(UTC)
    ship_frames, wave_rows = [], []
    result: dict = {"wave_date": str(wave.wave_date), "violations": []}
    if len(wave.lines):
        base = baseline_plan(wave)
        best = optimise(wave, base, workers=workers)
        for plan in (base, best):
            ships = shipments(wave, plan)
            outcomes = order_outcomes(wave, plan, ships)
            summary = summarise(wave, plan, outcomes, ships)
            ship_frames.append(_shipment_frame(wave, plan, ships, outcomes))
            wave_rows.append(_wave_row(wave, summary, planned_at))
            result[plan.name] = summary
        result["violations"] = verify(wave, best)
        result["baseline_violations"] = verify(wave, base)
    result["shipments_frame"] = (
        pd.concat(ship_frames, ignore_index=True) if ship_frames else _empty(store.SHIPMENTS)
    )
    result["waves_frame"] = pd.DataFrame(wave_rows) if wave_rows else _empty(store.WAVES)
    return result


def _store(con: duckdb.DuckDBPyConnection, wave_date: date, result: dict) -> dict:
    return _store_many(con, [(wave_date, result)])[0]


def plan_wave(
    con: duckdb.DuckDBPyConnection,
    wave_date: date,
    policy: DispatchPolicy | None = None,
    network: Network | None = None,
) -> dict:
    """Plan one wave and store it (replacing it). Returns both plans' summaries and the
    violations the independent check found."""
    policy = policy or load_policy()
    wave = store.load_wave(con, wave_date, policy, network)
    return _store(con, wave_date, solve_wave(wave))


#: waves loaded from the lake, and stored, together: one query per relation to load them and
#: one transaction per table to store them, instead of one per wave in the process that also
#: feeds the solvers
BATCH_DAYS = 8


def _store_many(con: duckdb.DuckDBPyConnection, solved: list[tuple[date, dict]]) -> list[dict]:
    """Store solved waves (replacing them) in one transaction per table; their results."""
    if not solved:
        return []
    days = [day for day, _ in solved]
    ships = [result.pop("shipments_frame") for _, result in solved]
    waves = [result.pop("waves_frame") for _, result in solved]
    store.replace_days(con, store.SHIPMENTS, _concat(ships), days)
    store.replace_days(con, store.WAVES, _concat(waves), days)
    out = []
    for (_, result), frame in zip(solved, ships, strict=True):
        result["shipments"] = int((frame["plan"] == "optimised").sum()) if len(frame) else 0
        out.append(result)
    return out


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The frames' rows in order (the first, empty, when none has any)."""
    full = [f for f in frames if len(f)]
    return pd.concat(full, ignore_index=True) if full else frames[0]


def plan_waves(
    con: duckdb.DuckDBPyConnection,
    days: list[date],
    policy: DispatchPolicy | None = None,
    log=None,
    workers: int = 1,
) -> list[dict]:
    """Plan several waves (one network load), stored in day order, :data:`BATCH_DAYS` at a
    time. With ``workers`` > 1 the waves are solved in that many processes while this one
    loads the next waves from the lake and stores the solved ones (the lake keeps one writer);
    the plans are the same either way."""
    policy = policy or load_policy()
    network = store.load_network(con, policy)
    results: list[dict] = []

    def stored(solved: list[tuple[date, dict]]) -> None:
        for result in _store_many(con, solved):
            results.append(result)
            if log:
                log(_progress(result))

    chunks = [days[i : i + BATCH_DAYS] for i in range(0, len(days), BATCH_DAYS)]
    with _process_pool(len(days), workers) as pool:
        if pool is None:
            # one wave (the daily job's) or one worker: the regions of a large wave use the
            # workers instead
            for chunk in chunks:
                waves = store.load_waves(con, chunk, policy, network)
                stored([(day, solve_wave(waves[day], workers=workers)) for day in chunk])
            return results
        pending: collections.deque = collections.deque()
        solved: list[tuple[date, dict]] = []
        for chunk in chunks:
            for day, wave in store.load_waves(con, chunk, policy, network).items():
                pending.append((day, pool.submit(solve_wave, wave)))
            # the waves beyond the ones being solved stay queued while this process stores
            while len(pending) > workers:
                done_day, future = pending.popleft()
                solved.append((done_day, future.result()))
            if len(solved) >= BATCH_DAYS:
                stored(solved)
                solved = []
        while pending:
            done_day, future = pending.popleft()
            solved.append((done_day, future.result()))
        stored(solved)
    return results


#: a wave's rounds are searched in the worker processes when their time limits add up to this
#: many seconds or more (a worker process takes about a second to start); smaller ones here
PARALLEL_ROUNDS_MIN_S = 3.0


@dataclass
class _Rounds:
    """A wave's van rounds, loaded and built, their searches submitted or solved."""

    wave_date: date
    rounds: dict
    #: warehouse -> the round's solution, or the future of it
    solving: dict


def _start_rounds(
    con: duckdb.DuckDBPyConnection,
    wave_date: date,
    policy: DispatchPolicy,
    network: Network,
    executor: Executor | None,
) -> _Rounds:
    """Load the wave's stored optimised plan and build one VRPTW per forward warehouse; the
    searches go to ``executor`` when there is one (each is a time-limited single-threaded
    search), else they are solved here."""
    ships = (
        con.execute(
            f"select * from {store.SHIPMENTS} where wave_date = ? and plan = 'optimised'",
            [wave_date],
        ).df()
        if store._exists(con, store.SHIPMENTS)
        else pd.DataFrame()
    )
    van = network.van_g_per_tkm
    rounds = routes.van_rounds(ships, network) if len(ships) else {}
    problems = {
        warehouse_id: routes.build_round(
            warehouse_id, routes.depot_of(network, warehouse_id), stops, policy
        )
        for warehouse_id, stops in rounds.items()
    }
    budget = sum(routes.time_limit(policy, p.instance.num_customers) for p in problems.values())
    if executor is not None and len(problems) > 1 and budget >= PARALLEL_ROUNDS_MIN_S:
        solving = {
            w: executor.submit(routes.solve_round, problem, wave_date, policy, van)
            for w, problem in problems.items()
        }
    else:
        solving = {
            w: routes.solve_round(problem, wave_date, policy, van)
            for w, problem in problems.items()
        }
    return _Rounds(wave_date, rounds, solving)


def _finish_rounds(con: duckdb.DuckDBPyConnection, started: _Rounds) -> dict:
    """The wave's solved rounds, in the warehouses' order, stored (replacing the wave) with
    every route checked independently."""
    route_frames, stop_frames = [], []
    result = {
        "wave_date": str(started.wave_date),
        "rounds": 0,
        "routes": 0,
        "stops": 0,
        "infeasible_rounds": [],
        "distance_km": 0.0,
        "seconds": 0.0,
    }
    for warehouse_id, stops in started.rounds.items():
        solved = started.solving[warehouse_id]
        solution, route_rows, stop_rows = solved.result() if isinstance(solved, Future) else solved
        route_frames.append(route_rows)
        stop_frames.append(stop_rows)
        result["rounds"] += 1
        result["routes"] += len(route_rows)
        result["stops"] += len(stop_rows)
        result["distance_km"] += float(route_rows["distance_km"].sum()) if len(route_rows) else 0.0
        result["seconds"] += solution.seconds
        if not solution.feasible or len(stop_rows) != len(stops):
            result["infeasible_rounds"].append(
                {"warehouse_id": warehouse_id, "violations": solution.violations[:5]}
            )
    route_frame = (
        pd.concat(route_frames, ignore_index=True) if route_frames else _empty(store.ROUTES)
    )
    stop_frame = pd.concat(stop_frames, ignore_index=True) if stop_frames else _empty(store.STOPS)
    store.replace_wave(con, store.ROUTES, route_frame, started.wave_date)
    store.replace_wave(con, store.STOPS, stop_frame, started.wave_date)
    return result


def route_wave(
    con: duckdb.DuckDBPyConnection,
    wave_date: date,
    policy: DispatchPolicy | None = None,
    network: Network | None = None,
    executor: Executor | None = None,
) -> dict:
    """Van rounds of the wave's stored optimised plan, one VRPTW per forward warehouse, stored
    (replacing the wave) with every route checked independently. With ``executor`` the rounds
    are searched in parallel; the results are in the warehouses' order either way."""
    policy = policy or load_policy()
    network = network or store.load_network(con, policy)
    return _finish_rounds(con, _start_rounds(con, wave_date, policy, network, executor))


@contextlib.contextmanager
def _process_pool(tasks: int, workers: int) -> Iterator[Executor | None]:
    """Worker processes for the waves' solves or their van rounds: the MIP and each round's
    search are single-threaded, so two cores solve about twice as many. Fewer than two tasks,
    or one worker, are solved in this process. The processes start with the first task
    submitted."""
    if tasks < 2 or workers < 2:
        yield None
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        yield pool


def route_waves(
    con: duckdb.DuckDBPyConnection,
    days: list[date],
    policy: DispatchPolicy | None = None,
    workers: int = 1,
    log=None,
) -> list[dict]:
    """Route several waves in day order (one network load), their rounds solved by ``workers``
    processes (``ORDERTOWER_ROUTING_WORKERS`` for the route_plans asset) while this process
    stores the wave before and loads the one after."""
    policy = policy or load_policy()
    network = store.load_network(con, policy)
    results = []

    def done(r: dict) -> None:
        results.append(r)
        if log:
            log(
                f"wave {r['wave_date']}: {r['stops']} stops in {r['routes']} routes from "
                f"{r['rounds']} forward warehouses, {r['distance_km']:.0f} km, "
                f"{r['seconds']:.1f} s"
                + (f", {len(r['infeasible_rounds'])} infeasible" if r["infeasible_rounds"] else "")
            )

    # each wave's rounds (one per forward warehouse) are searched side by side: a pool for
    # one wave too
    with _process_pool(2 * len(days), workers) as pool:
        # the next wave's rounds are queued behind the ones being searched, so the workers
        # never wait while this process stores a wave and loads the next (one lake writer)
        pending: collections.deque[_Rounds] = collections.deque()
        for day in days:
            pending.append(_start_rounds(con, day, policy, network, pool))
            while len(pending) > 1:
                done(_finish_rounds(con, pending.popleft()))
        while pending:
            done(_finish_rounds(con, pending.popleft()))
    return results


def _progress(result: dict) -> str:
    opt, base = result.get("optimised"), result.get("baseline")
    if not opt:
        return f"wave {result['wave_date']}: no orders"
    return (
        f"wave {result['wave_date']}: {opt['orders']} orders, cost/order "
        f"{opt['cost_per_order_eur']:.2f} vs {base['cost_per_order_eur']:.2f} EUR (baseline), "
        f"next-day {opt['next_day_hit_rate']} vs {base['next_day_hit_rate']}, "
        f"{opt['status']} gap {opt.get('gap', 0):.4f} in {opt['solve_seconds']:.1f} s"
    )


def _empty(table: str) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in store.COLUMNS[table]})
