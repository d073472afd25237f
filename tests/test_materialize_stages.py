"""`plan_stages`: the runs `ordertower materialize` splits a selection into, on small graphs.

Each graph here is built from real Dagster definitions; nothing runs, only the plan is checked.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from pipelines.materialize import (
    MaterializeError,
    Stage,
    parse_recent,
    plan_stages,
    recent_stages,
    stage_run_settings,
    stage_window,
)

DAILY = dg.DailyPartitionsDefinition(start_date="2026-01-01")


def _plan(assets: list, select: set[str] | None = None) -> list[tuple[bool, set[str]]]:
    """The plan for ``select`` (default: every asset), with keys as strings."""
    graph = dg.Definitions(assets=assets).resolve_asset_graph()
    owner = {k: a for a in assets for k in a.keys}
    keys = {k for k in owner if select is None or k.to_user_string() in select}
    partitioned = {k for k in keys if graph.get(k).partitions_def is not None}
    stages = plan_stages(graph, keys, partitioned, owner)
    assert all(isinstance(s, Stage) for s in stages)
    return [(s.partitioned, {k.to_user_string() for k in s.keys}) for s in stages]


def _risk_graph() -> list:
    """The graph the risk model brings: kinds alternate six times from reference to marts."""

    @dg.asset
    def reference(): ...

    @dg.asset(partitions_def=DAILY, deps=[reference])
    def ingest(): ...

    @dg.multi_asset(
        name="dbt_lake",
        specs=[
            dg.AssetSpec("stg_orders", deps=[ingest]),
            dg.AssetSpec("fct_orders", deps=["stg_orders"]),
            dg.AssetSpec("dim_date"),  # no parent at all: still built by the one dbt run
        ],
        can_subset=True,
    )
    def dbt_lake(): ...

    @dg.asset(deps=["fct_orders"])
    def train(): ...

    @dg.asset(deps=[train])
    def evaluate(): ...

    @dg.asset(deps=[evaluate])
    def promote(): ...

    @dg.asset(partitions_def=DAILY, deps=["fct_orders", promote])
    def order_risk_scores(): ...

    @dg.multi_asset(
        name="dbt_risk_marts",
        specs=[
            dg.AssetSpec("fct_order_risk", deps=[order_risk_scores]),
            dg.AssetSpec("review_queue", deps=["fct_order_risk"]),
        ],
        can_subset=True,
    )
    def dbt_risk_marts(): ...

    return [
        reference,
        ingest,
        dbt_lake,
        train,
        evaluate,
        promote,
        order_risk_scores,
        dbt_risk_marts,
    ]


def test_the_alternating_chain_runs_in_dependency_order():
    assert _plan(_risk_graph()) == [
        (False, {"reference"}),
        (True, {"ingest"}),
        (False, {"stg_orders", "fct_orders", "dim_date", "train", "evaluate", "promote"}),
        (True, {"order_risk_scores"}),
        (False, {"fct_order_risk", "review_queue"}),
    ]


def test_a_partial_selection_orders_through_the_unselected_assets():
    # reference -> ... -> promote -> order_risk_scores -> fct_order_risk, with only
    # unpartitioned assets selected: nothing partitioned is built, so one run orders them
    assert _plan(_risk_graph(), {"reference", "promote", "fct_order_risk"}) == [
        (False, {"reference", "promote", "fct_order_risk"}),
    ]
    # ingest -> dbt (unselected) -> train -> evaluate (unselected) -> promote -> scores
    assert _plan(_risk_graph(), {"ingest", "promote", "order_risk_scores", "review_queue"}) == [
        (True, {"ingest"}),
        (False, {"promote"}),
        (True, {"order_risk_scores"}),
        (False, {"review_queue"}),
    ]
    # two partitioned assets with only unselected assets between them share the run
    assert _plan(_risk_graph(), {"ingest", "order_risk_scores"}) == [
        (True, {"ingest", "order_risk_scores"})
    ]


def test_only_the_selected_keys_of_a_subsettable_multi_asset_are_tied():
    assert _plan(_risk_graph(), {"reference", "dim_date", "fct_orders"}) == [
        (False, {"reference", "dim_date", "fct_orders"}),
    ]
    assert _plan(_risk_graph(), {"ingest", "dim_date", "fct_orders"}) == [
        (True, {"ingest"}),
        (False, {"dim_date", "fct_orders"}),
    ]


def test_a_multi_asset_that_cannot_be_subset_waits_for_its_latest_part():
    @dg.asset
    def countries(): ...

    @dg.asset(partitions_def=DAILY)
    def raw(): ...

    @dg.multi_asset(
        specs=[
            dg.AssetSpec("seed", deps=[countries]),
            dg.AssetSpec("model", deps=[raw]),
            dg.AssetSpec("report", deps=["model"]),
        ],
        can_subset=False,
    )
    def dbt(): ...

    @dg.asset(deps=["seed"])
    def export(): ...

    assert _plan([countries, raw, dbt, export]) == [
        (False, {"countries"}),
        (True, {"raw"}),
        (False, {"seed", "model", "report", "export"}),
    ]


def test_unpartitioned_roots_run_first_and_one_kind_is_one_run():
    @dg.asset
    def lonely(): ...

    @dg.asset(partitions_def=DAILY)
    def a(): ...

    @dg.asset(partitions_def=DAILY, deps=[a])
    def b(): ...

    assert _plan([lonely, a, b]) == [(False, {"lonely"}), (True, {"a", "b"})]
    assert _plan([lonely, a, b], {"a", "b"}) == [(True, {"a", "b"})]
    assert _plan([lonely, a, b], {"lonely"}) == [(False, {"lonely"})]


def test_a_multi_asset_mixing_kinds_that_cannot_be_subset_runs_in_the_partitioned_run():
    @dg.multi_asset(
        specs=[dg.AssetSpec("daily", partitions_def=DAILY), dg.AssetSpec("snapshot")],
        can_subset=False,
    )
    def feed(): ...

    @dg.asset(deps=["snapshot"])
    def summary(): ...

    assert _plan([feed, summary]) == [(True, {"daily", "snapshot"}), (False, {"summary"})]


def test_a_subsettable_multi_asset_on_both_sides_of_a_partitioned_asset_is_split():
    # one dbt project whose marts read the scores, which read its models: no single run fits
    @dg.asset(partitions_def=DAILY)
    def ingest(): ...

    @dg.multi_asset(
        specs=[
            dg.AssetSpec("lake", deps=[ingest]),
            dg.AssetSpec("seed"),
            dg.AssetSpec("marts", deps=["scores"]),
            dg.AssetSpec("queue", deps=["marts"]),
        ],
        can_subset=True,
    )
    def dbt(): ...

    @dg.asset(partitions_def=DAILY, deps=["lake"])
    def scores(): ...

    assert _plan([ingest, dbt, scores]) == [
        (False, {"seed"}),
        (True, {"ingest"}),
        (False, {"lake"}),
        (True, {"scores"}),
        (False, {"marts", "queue"}),
    ]


def test_a_multi_asset_that_cannot_be_subset_nor_share_a_run_is_an_error():
    @dg.asset(partitions_def=DAILY)
    def ingest(): ...

    @dg.multi_asset(
        specs=[dg.AssetSpec("lake", deps=[ingest]), dg.AssetSpec("marts", deps=["scores"])],
        can_subset=False,
    )
    def dbt(): ...

    @dg.asset(partitions_def=DAILY, deps=["lake"])
    def scores(): ...

    with pytest.raises(MaterializeError, match="cannot order the runs: dbt"):
        _plan([ingest, dbt, scores])


def test_a_run_gets_the_window_its_kind_needs():
    @dg.multi_asset(name="dbt_lake", specs=[dg.AssetSpec("fct")], can_subset=True)
    def dbt_lake(): ...

    @dg.asset
    def model(): ...

    @dg.asset(partitions_def=DAILY)
    def raw(): ...

    owner = {k: a for a in (dbt_lake, model, raw) for k in a.keys}
    window = ("2026-08-25", "2026-08-27")
    fct, mdl, rw = dg.AssetKey("fct"), dg.AssetKey("model"), dg.AssetKey("raw")

    assert stage_run_settings(Stage(True, {rw}), owner, window) == (
        {},
        {
            ASSET_PARTITION_RANGE_START_TAG: "2026-08-25",
            ASSET_PARTITION_RANGE_END_TAG: "2026-08-27",
        },
    )
    dbt_config = {"events_from": "2026-08-25", "events_to": "2026-08-27"}
    assert stage_run_settings(Stage(False, {fct, mdl}), owner, window) == (
        {"ops": {"dbt_lake": {"config": dbt_config}}},
        {},
    )
    assert stage_run_settings(Stage(False, {mdl}), owner, window) == ({}, {})
    assert stage_run_settings(Stage(False, {fct}), owner, None) == ({}, {})
    with pytest.raises(ValueError, match="partition window"):
        stage_run_settings(Stage(True, {rw}), owner, None)


def _dispatch_graph() -> list:
    """Features and dispatch plans in one partitioned phase, the rounds reading the plans, and
    a score (another group) reading the plans too when ``scored`` is asked."""

    @dg.asset(partitions_def=DAILY, group_name="risk")
    def features(): ...

    @dg.asset(partitions_def=DAILY, group_name="dispatch")
    def plans(): ...

    @dg.asset(partitions_def=DAILY, group_name="dispatch", deps=[plans])
    def rounds(): ...

    @dg.asset(group_name="marts", deps=[features, rounds])
    def marts(): ...

    return [features, plans, rounds, marts]


def _recent(assets: list, recent: dict[str, int]) -> list[tuple[bool, set[str], int | None]]:
    graph = dg.Definitions(assets=assets).resolve_asset_graph()
    owner = {k: a for a in assets for k in a.keys}
    keys = set(owner)
    partitioned = {k for k in keys if graph.get(k).partitions_def is not None}
    stages = recent_stages(graph, plan_stages(graph, keys, partitioned, owner), recent)
    return [(s.partitioned, {k.to_user_string() for k in s.keys}, s.days) for s in stages]


def test_recent_groups_run_over_the_last_days_of_the_window_in_a_run_of_their_own():
    assets = _dispatch_graph()
    assert _recent(assets, {}) == [
        (True, {"features", "plans", "rounds"}, None),
        (False, {"marts"}, None),
    ]
    assert _recent(assets, {"dispatch": 30}) == [
        (True, {"features"}, None),
        (True, {"plans", "rounds"}, 30),
        (False, {"marts"}, None),
    ]

    # what the rest of the stage reads runs first
    @dg.asset(partitions_def=DAILY, group_name="risk", deps=["plans"])
    def scored(): ...

    assert _recent([*assets, scored], {"dispatch": 7})[:2] == [
        (True, {"plans", "rounds"}, 7),
        (True, {"features", "scored"}, None),
    ]
    with pytest.raises(MaterializeError, match="no asset group named dispatchh"):
        _recent(assets, {"dispatchh": 30})


def test_a_recent_stage_covers_the_last_days_of_the_window_and_never_more():
    window = ("2026-08-20", "2026-11-17")
    assert stage_window(Stage(True, set(), 30), window) == ("2026-10-19", "2026-11-17")
    assert stage_window(Stage(True, set(), 1), window) == ("2026-11-17", "2026-11-17")
    assert stage_window(Stage(True, set(), 365), window) == window
    assert stage_window(Stage(True, set()), window) == window
    assert stage_window(Stage(False, set(), 30), window) == window
    assert stage_window(Stage(True, set(), 30), None) is None
    assert parse_recent(["dispatch=30", " risk = 7 "]) == {"dispatch": 30, "risk": 7}
    assert parse_recent(None) == {}
    for bad in ("dispatch", "dispatch=", "=30", "dispatch=0", "dispatch=-3", "dispatch=x"):
        with pytest.raises(MaterializeError, match="GROUP=DAYS"):
            parse_recent([bad])


def _project_stages(select) -> list[tuple[bool, set[str], set[str]]]:
    """The project's plan for the keys ``select(owner_name)`` keeps: per stage, whether it is
    partitioned, its owners' names and its asset keys."""
    from pipelines.definitions import defs

    graph = defs.resolve_asset_graph()
    owner = {k: a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition) for k in a.keys}
    keys = {k for k in owner if select(owner[k].node_def.name)}
    partitioned = {k for k in keys if graph.get(k).partitions_def is not None}
    stages = plan_stages(graph, keys, partitioned, owner)
    return [
        (
            s.partitioned,
            {owner[k].node_def.name for k in s.keys},
            {k.to_user_string() for k in s.keys},
        )
        for s in stages
    ]


def _project_plan(select) -> list[tuple[bool, set[str]]]:
    """The project's plan for the keys ``select(owner_name)`` keeps, as sets of owner names."""
    return [(p, owners) for p, owners, _ in _project_stages(select)]


def test_the_lake_runs_as_reference_data_then_the_ingest_then_dbt(lake_home: Path):
    plan = _project_plan(lambda name: name.startswith("ingest_") or name == "dbt_lake")
    assert [p for p, _ in plan] == [False, True, False]
    reference, daily, dbt = (owners for _, owners in plan)
    assert dbt == {"dbt_lake"}
    assert {"ingest_warehouses", "ingest_skus", "ingest_ip_ranges"} <= reference
    assert {"ingest_orders", "ingest_shipments", "ingest_carrier_events"} <= daily
    assert not reference & daily


def test_the_whole_project_alternates_up_to_the_risk_and_dispatch_marts(lake_home: Path):
    stages = _project_stages(lambda name: True)
    plan = [(p, owners) for p, owners, _ in stages]
    assert [p for p, _ in plan] == [False, True, False, True, False, True, False]
    assert all(n.startswith("ingest_") for n in plan[0][1] | plan[1][1])
    # the lake, then the ETA model on its staging views and the ETAs (nothing partitioned in
    # between)
    assert plan[2][1] == {
        "dbt_lake",
        "ml__eta_model_candidate",
        "ml__eta_model_evaluation",
        "ml__eta_model_champion",
        "ml__shipment_etas",
    }
    # daily: risk features, and each wave's dispatch plan then its van rounds
    assert plan[3][1] == {"ml__order_risk_features", "dispatch_plan", "route_plans"}
    assert plan[4][1] == {
        "ml__risk_model_candidate",
        "ml__risk_model_evaluation",
        "ml__risk_model_champion",
    }
    assert plan[5][1] == {"ml__order_risk_scores"}
    assert plan[6][1] == {"dbt_ml_marts"}
    # the marts on the ETAs, the plans and the scores in one dbt invocation, after the last
    # of the ML assets they read
    marts = ("fct_shipment_eta", "fct_dispatch_waves", "fct_route_plans", "fct_order_risk")
    assert {f"marts/{m}" for m in marts} <= stages[6][2]
