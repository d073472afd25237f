"""How `ordertower materialize` splits the graph into runs of one kind each."""

from __future__ import annotations

import dagster as dg

from pipelines.materialize import plan_stages

DAILY = dg.DailyPartitionsDefinition(start_date="2026-01-01")


def _plan(assets: list) -> list[tuple[bool, set[str]]]:
    defs = dg.Definitions(assets=assets)
    graph = defs.resolve_asset_graph()
    owner = {k: a for a in assets for k in a.keys}
    keys = set(owner)
    partitioned = {k for k in keys if graph.get(k).partitions_def is not None}
    return [
        (stage.partitioned, {k.to_user_string() for k in stage.keys})
        for stage in plan_stages(graph, keys, partitioned, owner)
    ]


def test_alternating_chain_runs_in_dependency_order():
    @dg.asset
    def reference(): ...

    @dg.asset(partitions_def=DAILY, deps=[reference])
    def ingest(): ...

    @dg.multi_asset(
        specs=[dg.AssetSpec("lake_a", deps=[ingest]), dg.AssetSpec("lake_b", deps=["lake_a"])]
    )
    def dbt(): ...

    @dg.asset(partitions_def=DAILY, deps=["lake_b"])
    def features(): ...

    @dg.asset(deps=[features])
    def train(): ...

    @dg.asset(deps=[train])
    def promote(): ...

    @dg.asset(partitions_def=DAILY, deps=[features, promote])
    def scores(): ...

    @dg.asset(deps=[scores])
    def marts(): ...

    assert _plan([reference, ingest, dbt, features, train, promote, scores, marts]) == [
        (False, {"reference"}),
        (True, {"ingest"}),
        (False, {"lake_a", "lake_b"}),
        (True, {"features"}),
        (False, {"train", "promote"}),
        (True, {"scores"}),
        (False, {"marts"}),
    ]


def test_a_multi_asset_waits_for_its_latest_part():
    @dg.asset(partitions_def=DAILY)
    def raw(): ...

    @dg.multi_asset(
        specs=[dg.AssetSpec("seed"), dg.AssetSpec("model", deps=[raw])], can_subset=False
    )
    def dbt(): ...

    # the seed has no partitioned parent but is built in the same invocation as the model
    assert _plan([raw, dbt]) == [(True, {"raw"}), (False, {"seed", "model"})]


def test_the_project_graph_builds_lake_then_model_then_scores():
    from pipelines.definitions import defs

    graph = defs.resolve_asset_graph()
    assets = [a for a in defs.assets if isinstance(a, dg.AssetsDefinition)]
    owner = {k: a for a in assets for k in a.keys}
    keys = {k for k in dg.AssetSelection.all().resolve(graph) if k in owner}
    partitioned = {k for k in keys if graph.get(k).partitions_def is not None}
    stages = plan_stages(graph, keys, partitioned, owner)
    where = {k.to_user_string(): i for i, s in enumerate(stages) for k in s.keys}
    assert [s.partitioned for s in stages] == [False, True, False, True, False, True, False]
    assert where["raw/ip_ranges"] < where["raw/orders"] < where["marts/fct_orders"]
    assert (
        where["marts/fct_orders"]
        < where["ml/order_risk_features"]
        < where["ml/risk_model_candidate"]
    )
    assert (
        where["ml/risk_model_champion"]
        < where["ml/order_risk_scores"]
        < where["marts/fct_order_risk"]
    )
    assert (
        where["marts/fct_orders"]
        <= where["ml/eta_model_candidate"]
        <= where["ml/eta_model_champion"]
        <= where["ml/shipment_etas"]
    )
