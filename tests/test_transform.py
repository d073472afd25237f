"""The dbt project in the lineage graph: keys and groups come from the folder, sources are raw."""

from __future__ import annotations

import dagster as dg

from pipelines.definitions import defs
from pipelines.defs.transform.project import translator


def test_sources_are_the_raw_tables_ingestion_lands():
    props = {
        "resource_type": "source",
        "name": "orders",
        "source_name": "oms",
        "fqn": ["ordertower", "staging", "oms", "oms", "orders"],
    }
    assert translator.get_asset_key(props) == dg.AssetKey(["raw", "orders"])


def test_models_are_keyed_and_grouped_by_layer():
    props = {
        "resource_type": "model",
        "name": "stg_oms__orders",
        "fqn": ["ordertower", "staging", "oms", "stg_oms__orders"],
    }
    assert translator.get_asset_key(props) == dg.AssetKey(["staging", "stg_oms__orders"])
    assert translator.get_group_name(props) == "staging"


def test_every_dbt_source_is_landed_by_an_ingest_asset():
    graph = defs.resolve_asset_graph()
    staging = [k for k in graph.get_all_asset_keys() if k.path[0] == "staging"]
    assert staging
    for key in staging:
        for parent in graph.get(key).parent_keys:
            if parent.path[0] == "raw":
                assert graph.get(parent).is_materializable, f"{parent} is not produced by ingestion"
