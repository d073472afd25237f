"""Dispatch planning on hand-built waves: lanes priced like the lake, stock and capacity never
exceeded, the baseline rule, peak diversion to a forward warehouse, the green option, the
independent plan check, and re-runs that replace a wave in the lake."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from ml.dispatch import store
from ml.dispatch.allocate import Plan, baseline_plan, optimise
from ml.dispatch.config import PolicyError, load_policy
from ml.dispatch.evaluate import order_outcomes, shipments, summarise, verify
from ml.dispatch.network import GREEN, STD, Network, delivery_dates, haversine_km
from ml.dispatch.pipeline import solve_wave
from ml.dispatch.wave import Wave
from ordertower.settings import PROJECT_ROOT

SEEDS = PROJECT_ROOT / "dbt" / "seeds" / "reference"
WAVE = date(2026, 9, 2)  # a Wednesday

# central Erfurt, forward Paris and Lyon (cities of the simulated network)
WAREHOUSES = pd.DataFrame(
    {
        "warehouse_id": ["WH-ERF", "WH-PAR", "WH-LYO"],
        "warehouse_type": ["central", "forward", "forward"],
        "lat": [50.98, 48.86, 45.76],
        "lon": [11.03, 2.35, 4.84],
        "country_code": ["DE", "FR", "FR"],
        "outbound_capacity_per_day": [5000, 5000, 5000],
    }
)
PARIS = (48.85, 2.30)
MADRID = (40.42, -3.70)


@pytest.fixture
def policy():
    return load_policy()


def _network(policy, warehouses: pd.DataFrame = WAREHOUSES) -> Network:
    return Network(
        warehouses,
        pd.read_csv(SEEDS / "freight_emission_factors.csv"),
        pd.read_csv(SEEDS / "freight_rates.csv"),
        pd.read_csv(SEEDS / "green_mode_shift.csv"),
        policy.network,
    )


def _lines(
    n: int,
    where: tuple[float, float],
    country: str,
    promise: str,
    promised: date,
    skus: list[str] | None = None,
    start: int = 0,
) -> pd.DataFrame:
    rows = []
    for i in range(n):
        order = f"ORD-{start + i:08d}"
        for j, sku in enumerate(skus or ["SKU-1"]):
            rows.append(
                {
                    "order_line_id": f"{order}/{j + 1}",
                    "order_id": order,
                    "line_no": j + 1,
                    "sku_id": sku,
                    "quantity": 1,
                    "line_weight_kg": 1.5,
                    "promise_type": promise,
                    "shipping_country_code": country,
                    "is_eu_destination": True,
                    "ship_lat": where[0] + (i % 7) * 0.01,
                    "ship_lon": where[1] + (i % 5) * 0.01,
                    "local_order_hour": 10,
                    "promised_delivery_date": promised,
                    "ordered_at": datetime(2026, 9, 2, 8) + timedelta(seconds=i),
                }
            )
    return pd.DataFrame(rows)


def _stock(**units: dict[str, int]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"warehouse_id": w, "sku_id": s, "available_qty": q}
            for w, per_sku in units.items()
            for s, q in per_sku.items()
        ]
    )


def _wave(policy, lines, stock, warehouses=WAREHOUSES) -> Wave:
    return Wave.build(WAVE, lines, stock, _network(policy, warehouses), policy)


def _summary(wave: Wave, plan: Plan) -> dict:
    ships = shipments(wave, plan)
    return summarise(wave, plan, order_outcomes(wave, plan, ships), ships)


# ----------------------------------------------------------------------------------- network


def test_lanes_follow_the_reference_seeds(policy):
    net = _network(policy)
    factors = pd.read_csv(SEEDS / "freight_emission_factors.csv").set_index("vehicle_class")
    rates = pd.read_csv(SEEDS / "freight_rates.csv").set_index("vehicle_class")
    # Paris from Paris: a direct van; Madrid from Erfurt: road line-haul plus the van round
    lanes = net.lanes(
        np.array([PARIS[0], MADRID[0]]),
        np.array([PARIS[1], MADRID[1]]),
        np.array(["FR", "ES"]),
        np.array([True, True]),
        np.array([1, 0]),
    )
    van_km = haversine_km(48.86, 2.35, *PARIS) * policy.network.detour["last_mile"]
    assert lanes.modes[0, STD] == "last_mile"
    assert lanes.kg_co2e_per_t[0, STD] == pytest.approx(
        van_km * factors.loc["van_diesel_average", "wtw_g_co2e_per_tkm"] / 1000
    )
    assert lanes.fixed_eur[0, STD] == pytest.approx(
        rates.loc["van_diesel_average", "fixed_eur_per_shipment"]
    )
    assert not lanes.available[0, GREEN]  # no greener option for a van round
    road = haversine_km(50.98, 11.03, *MADRID) * policy.network.detour["road"]
    assert lanes.modes[1, STD] == "road>last_mile"
    assert lanes.transit_days[1, STD] == 1 + int(np.ceil((road - 585) / 900))
    # the green plan moves the long road leg to rail exactly as int_shipment_legs__costed does
    shift = pd.read_csv(SEEDS / "green_mode_shift.csv").set_index("from_vehicle_class")
    assert lanes.available[1, GREEN] and lanes.modes[1, GREEN] == "rail>last_mile"
    rail = road * shift.loc["artic_gt33t", "distance_factor"]
    expected = (
        rail * factors.loc["rail_freight", "wtw_g_co2e_per_tkm"]
        + policy.network.last_mile_km * factors.loc["van_diesel_average", "wtw_g_co2e_per_tkm"]
    ) / 1000
    assert lanes.kg_co2e_per_t[1, GREEN] == pytest.approx(expected)
    assert lanes.kg_co2e_per_t[1, GREEN] < lanes.kg_co2e_per_t[1, STD]
    assert (
        lanes.transit_days[1, GREEN]
        == lanes.transit_days[1, STD] + shift.loc["artic_gt33t", "extra_days"]
    )


def test_no_sunday_deliveries():
    saturday = np.array(["2026-09-05"], dtype="datetime64[D]")
    assert str(delivery_dates(saturday, np.array([1]))[0]) == "2026-09-07"
    assert str(delivery_dates(saturday, np.array([0]))[0]) == "2026-09-05"


def test_policy_errors_name_the_key(tmp_path):
    bad = tmp_path / "policy.yaml"
    bad.write_text("solver: {backend: gurobi}\n")
    with pytest.raises(PolicyError, match="backend"):
        load_policy(bad)
    bad.write_text("objective: {carbon_tax: 3}\n")
    with pytest.raises(PolicyError, match="carbon_tax"):
        load_policy(bad)
    bad.write_text("routing: {stall_iterations: 0}\n")
    with pytest.raises(PolicyError, match="stall_iterations"):
        load_policy(bad)
    for batch in ("0", "two", "1.5", "true"):
        bad.write_text(f"solver: {{subproblems_per_batch: {batch}}}\n")
        with pytest.raises(PolicyError, match="subproblems_per_batch"):
            load_policy(bad)
    bad.write_text("routing: {stall_iterations: null}\n")
    assert load_policy(bad).routing.stall_iterations is None  # the time limit alone
    assert load_policy().routing.stall_iterations == 500


# -------------------------------------------------------------------------------- allocation


def test_peak_diverts_to_the_forward_warehouse_with_stock(policy):
    """Paris is the nearest warehouse but can ship only 60 units today: the optimiser sends
    the rest from Lyon (overnight by road, still next day); the baseline queues them in Paris
    and misses the promise."""
    caps = WAREHOUSES.assign(outbound_capacity_per_day=[5000, 60, 5000])
    lines = _lines(200, PARIS, "FR", "next_day", WAVE + timedelta(days=1))
    stock = _stock(
        **{"WH-PAR": {"SKU-1": 1000}, "WH-LYO": {"SKU-1": 1000}, "WH-ERF": {"SKU-1": 1000}}
    )
    wave = _wave(policy, lines, stock, caps)
    base = baseline_plan(wave)
    best = optimise(wave, base)
    assert verify(wave, best) == [] and verify(wave, base) == []
    names = wave.network.warehouses["warehouse_id"].to_numpy()
    today = ~best.line_deferred
    by_wh = pd.Series(names[best.line_wh[today]]).value_counts().to_dict()
    assert by_wh.get("WH-PAR") == 60  # the forward warehouse is used to its capacity
    assert by_wh.get("WH-LYO", 0) == 140  # the peak moves to the next forward warehouse
    opt, rule = _summary(wave, best), _summary(wave, base)
    assert opt["next_day_hit_rate"] >= 0.98
    assert rule["next_day_hit_rate"] < 0.5 and rule["deferred_orders"] == 140
    assert opt["status"] == "OPTIMAL" and opt["gap"] <= policy.solver.relative_gap


def test_stock_is_never_overdrawn_and_missing_stock_is_back_ordered(policy):
    lines = _lines(30, PARIS, "FR", "standard", WAVE + timedelta(days=3), skus=["SKU-1", "SKU-2"])
    # SKU-1: 10 in Paris, 10 in Lyon, 5 in Erfurt (25 for 30 orders); SKU-2 plenty in Erfurt
    stock = _stock(
        **{
            "WH-PAR": {"SKU-1": 10},
            "WH-LYO": {"SKU-1": 10},
            "WH-ERF": {"SKU-1": 5, "SKU-2": 100},
        }
    )
    wave = _wave(policy, lines, stock)
    for plan in (baseline_plan(wave), optimise(wave)):
        assert verify(wave, plan) == []
        summary = _summary(wave, plan)
        assert summary["unfilled_lines"] == 5  # 30 ordered, 25 in the network
    best = optimise(wave)
    # consolidation: orders whose SKU-1 is in Erfurt ship whole from there, not split
    assert _summary(wave, best)["split_rate"] <= _summary(wave, baseline_plan(wave))["split_rate"]


def test_the_independent_check_catches_overdrawn_stock_and_capacity(policy):
    caps = WAREHOUSES.assign(outbound_capacity_per_day=[5000, 3, 5000])
    lines = _lines(5, PARIS, "FR", "standard", WAVE + timedelta(days=3))
    wave = _wave(policy, lines, _stock(**{"WH-PAR": {"SKU-1": 4}}), caps)
    everything_from_paris = Plan(
        "broken",
        np.full(len(wave.lines), 1),
        np.zeros(len(wave.lines), dtype=np.int64),
        np.zeros(len(wave.lines), dtype=bool),
    )
    problems = verify(wave, everything_from_paris)
    assert any("ships 5 units of SKU-1 but holds 4" in p for p in problems)
    assert any("over its capacity of 3" in p for p in problems)


def test_green_customers_get_the_lower_carbon_lane_within_their_window(policy):
    slow = WAVE + timedelta(days=6)  # a green promise: the rail lane (2 days more) still fits
    green = _lines(20, MADRID, "ES", "green", slow)
    hurried = _lines(20, MADRID, "ES", "standard", WAVE + timedelta(days=3), start=100)
    stock = _stock(**{"WH-ERF": {"SKU-1": 100}})
    wave = _wave(policy, pd.concat([green, hurried]), stock)
    best = optimise(wave)
    ships = shipments(wave, best)
    ships["promise"] = wave.orders["promise_type"].to_numpy()[ships["order_idx"]]
    assert set(ships.loc[ships["promise"] == "green", "variant"]) == {GREEN}
    assert set(ships.loc[ships["promise"] == "standard", "variant"]) == {STD}
    outcomes = order_outcomes(wave, best, ships)
    assert outcomes["on_time"].all()
    per_kg = (ships["kg_co2e"] / ships["weight_kg"]).groupby(ships["promise"]).mean()
    assert per_kg["green"] < per_kg["standard"]


def test_optimised_plan_is_cheaper_than_the_baseline_and_keeps_the_promise(policy):
    """Multi-line orders: the rule ships each line from the nearest holder (splits); the
    optimiser consolidates into one parcel from a warehouse holding both."""
    lines = _lines(40, PARIS, "FR", "next_day", WAVE + timedelta(days=1), skus=["SKU-1", "SKU-2"])
    stock = _stock(
        **{
            "WH-PAR": {"SKU-1": 100},
            "WH-LYO": {"SKU-1": 100, "SKU-2": 100},
            "WH-ERF": {"SKU-2": 100},
        }
    )
    wave = _wave(policy, lines, stock)
    result = solve_wave(wave)
    opt, base = result["optimised"], result["baseline"]
    assert opt["cost_per_order_eur"] < base["cost_per_order_eur"]
    assert opt["next_day_hit_rate"] >= base["next_day_hit_rate"]
    assert opt["split_rate"] < base["split_rate"]
    assert result["violations"] == []
    assert len(result["shipments_frame"]) == opt["shipments"] + base["shipments"]


def test_a_large_wave_is_decomposed_into_regions(policy):
    small = replace(policy, solver=replace(policy.solver, max_lines_per_subproblem=25))
    lines = pd.concat(
        [
            _lines(30, PARIS, "FR", "standard", WAVE + timedelta(days=3)),
            _lines(30, (50.1, 8.7), "DE", "standard", WAVE + timedelta(days=3), start=100),
        ]
    )
    stock = _stock(**{"WH-PAR": {"SKU-1": 100}, "WH-ERF": {"SKU-1": 100}, "WH-LYO": {"SKU-1": 5}})
    wave = _wave(small, lines, stock)
    plan = optimise(wave)
    assert plan.stats["subproblems"] >= 3
    assert verify(wave, plan) == []
    assert (plan.line_wh >= 0).all()


def test_a_batch_of_regions_solved_side_by_side_is_the_batch_solved_in_turn(policy):
    """Regions solved in batches of two share what the batches before them left: in worker
    processes or one after the other the plan is the same, within stock and capacity, every
    line placed."""
    batched = replace(
        policy, solver=replace(policy.solver, max_lines_per_subproblem=20, subproblems_per_batch=2)
    )
    lines = pd.concat(
        [
            _lines(20, PARIS, "FR", "standard", WAVE + timedelta(days=3)),
            _lines(20, (50.1, 8.7), "DE", "next_day", WAVE + timedelta(days=1), start=100),
            _lines(20, (48.1, 11.6), "DE", "standard", WAVE + timedelta(days=3), start=200),
        ]
    )
    stock = _stock(**{"WH-PAR": {"SKU-1": 30}, "WH-ERF": {"SKU-1": 30}, "WH-LYO": {"SKU-1": 30}})
    plans = [optimise(_wave(batched, lines, stock), workers=w) for w in (1, 2)]
    assert plans[0].stats["subproblems"] == 3  # a batch of two, then the last region alone
    assert (plans[0].line_wh == plans[1].line_wh).all()
    assert (plans[0].line_deferred == plans[1].line_deferred).all()
    assert plans[0].stats["objective"] == plans[1].stats["objective"]
    wave = _wave(batched, lines, stock)
    assert verify(wave, plans[1]) == []
    assert (plans[1].line_wh >= 0).all()


def test_cp_sat_backend_solves_the_same_model(policy):
    cp = replace(policy, solver=replace(policy.solver, backend="cp-sat", time_limit_s=10))
    lines = _lines(30, PARIS, "FR", "next_day", WAVE + timedelta(days=1), skus=["SKU-1", "SKU-2"])
    stock = _stock(**{"WH-PAR": {"SKU-1": 50, "SKU-2": 10}, "WH-LYO": {"SKU-1": 50, "SKU-2": 50}})
    mip = optimise(_wave(policy, lines, stock))
    sat = optimise(_wave(cp, lines, stock))
    assert sat.stats["objective"] == pytest.approx(mip.stats["objective"], rel=1e-3)


# ------------------------------------------------------------------------------------ store


def test_replanning_a_wave_replaces_it(lake_writer, policy):
    lines = _lines(10, PARIS, "FR", "standard", WAVE + timedelta(days=3))
    wave = _wave(policy, lines, _stock(**{"WH-PAR": {"SKU-1": 100}}))
    for _ in range(2):
        result = solve_wave(wave)
        store.replace_wave(lake_writer, store.SHIPMENTS, result["shipments_frame"], WAVE)
        store.replace_wave(lake_writer, store.WAVES, result["waves_frame"], WAVE)
    counts = lake_writer.execute(
        f"select plan, count(*) from {store.SHIPMENTS} group by 1 order by 1"
    ).fetchall()
    assert counts == [("baseline", 10), ("optimised", 10)]
    assert lake_writer.execute(f"select count(*) from {store.WAVES}").fetchone()[0] == 2
    # an empty wave clears what was there
    store.replace_wave(lake_writer, store.SHIPMENTS, result["shipments_frame"].iloc[:0], WAVE)
    assert lake_writer.execute(f"select count(*) from {store.SHIPMENTS}").fetchone()[0] == 0


# ------------------------------------------------------------------------------- van rounds


@pytest.mark.parametrize("engine", ["pyvrp", "ortools"])
def test_a_van_round_is_feasible_and_serves_every_stop_once(policy, engine):
    from ml.dispatch.routes import build_round, solve_round

    pol = replace(policy, routing=replace(policy.routing, engine=engine))
    rng = np.random.default_rng(3)
    stops = pd.DataFrame(
        {
            "order_id": [f"ORD-{i:08d}" for i in range(40)],
            "ship_lat": 48.86 + rng.normal(0, 0.3, 40),
            "ship_lon": 2.35 + rng.normal(0, 0.4, 40),
            "weight_kg": rng.uniform(0.5, 60, 40),
        }
    )
    problem = build_round("WH-PAR", (48.86, 2.35), stops, pol)
    solution, routes, visits = solve_round(problem, WAVE, pol, van_g_per_tkm=782.25)
    assert solution.feasible, solution.violations
    assert sorted(visits["order_id"]) == sorted(stops["order_id"])  # each stop exactly once
    assert (visits["arrival_min"] <= visits["window_end_min"] + 1e-6).all()
    assert (visits["arrival_min"] >= visits["window_start_min"] - 1e-6).all()
    assert (routes["load_kg"] <= pol.routing.van_capacity_kg).all()
    assert (routes["end_min"] <= pol.routing.return_by_hour * 60 + 1e-6).all()
    assert (routes["kg_co2e"] > 0).all() and routes["engine"].eq(engine).all()


def test_a_day_without_orders_plans_nothing_and_clears_the_wave(lake_writer, policy):
    lines = _lines(5, PARIS, "FR", "standard", WAVE + timedelta(days=3))
    wave = _wave(policy, lines, _stock(**{"WH-PAR": {"SKU-1": 100}}))
    result = solve_wave(wave)
    store.replace_wave(lake_writer, store.SHIPMENTS, result["shipments_frame"], WAVE)
    empty = _wave(policy, lines.iloc[:0], _stock(**{"WH-PAR": {"SKU-1": 100}}))
    assert len(empty.options.order) == 0
    nothing = solve_wave(empty)
    assert "optimised" not in nothing and nothing["violations"] == []
    store.replace_wave(lake_writer, store.SHIPMENTS, nothing["shipments_frame"], WAVE)
    assert lake_writer.execute(f"select count(*) from {store.SHIPMENTS}").fetchone()[0] == 0


def test_the_mip_built_from_arrays_is_the_model_built_row_by_row():
    """``mip_model_proto`` gives MathOpt the model its Python API builds one row at a time
    (the same variables, costs, rows in the same order, coefficients), on a problem with every
    kind of row, a repeated column in a knapsack and a pair on one variable."""
    from ortools.math_opt.python import mathopt

    from ml.dispatch.allocate import Problem, mip_model_proto

    rng = np.random.default_rng(3)
    n = 40
    problem = Problem(
        cost=rng.integers(0, 500, n).astype(float),
        exactly_one=[list(range(i, i + 4)) for i in range(0, 36, 4)],
        implies=[(int(a), int(b)) for a, b in rng.integers(0, n, (15, 2))] + [(5, 5)],
        at_most_one=[(int(a), int(b)) for a, b in rng.integers(0, n, (10, 2))],
        knapsacks=[
            ([1, 7, 9, 7], [3, 2, 5, 4], 8),
            (list(range(20, 30)), rng.integers(1, 9, 10).tolist(), 17),
        ],
        hint=np.zeros(n),
    )
    reference = mathopt.Model(name="dispatch")
    v = [reference.add_binary_variable() for _ in range(n)]
    for group in problem.exactly_one:
        reference.add_linear_constraint(mathopt.fast_sum(v[i] for i in group) == 1)
    for a, b in problem.implies:
        reference.add_linear_constraint(v[a] - v[b] <= 0)
    for a, b in problem.at_most_one:
        reference.add_linear_constraint(v[a] + v[b] <= 1)
    for idx, coef, rhs in problem.knapsacks:
        reference.add_linear_constraint(
            mathopt.fast_sum(c * v[i] for i, c in zip(idx, coef, strict=True)) <= rhs
        )
    reference.minimize(mathopt.fast_sum(c * x for c, x in zip(problem.cost, v, strict=True)))
    built = mathopt.Model.from_model_proto(mip_model_proto(problem))
    assert built.export_model() == reference.export_model()
    solved = mathopt.solve(built, mathopt.SolverType.HIGHS)
    expected = mathopt.solve(reference, mathopt.SolverType.HIGHS)
    assert solved.objective_value() == pytest.approx(expected.objective_value())
