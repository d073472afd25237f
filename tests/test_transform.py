"""The dbt project in the lineage graph: keys and groups come from the folder, sources are raw."""

from __future__ import annotations

from pathlib import Path

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


#: raw tables written outside Dagster runs, declared as external assets of their writer
EXTERNAL_RAW = {"raw/carrier_events_stream"}  # ordertower stream (the stream domain)


def test_every_dbt_source_is_landed_by_an_ingest_asset():
    graph = defs.resolve_asset_graph()
    staging = [k for k in graph.get_all_asset_keys() if k.path[0] == "staging"]
    assert staging
    for key in staging:
        for parent in graph.get(key).parent_keys:
            if parent.path[0] == "raw" and parent.to_user_string() not in EXTERNAL_RAW:
                assert graph.get(parent).is_materializable, f"{parent} is not produced by ingestion"
    # the external ones are declared (with a description of who writes them), not dangling
    for name in EXTERNAL_RAW:
        node = graph.get(dg.AssetKey(name.split("/")))
        assert node.is_external and "ordertower stream" in (node.description or "")


def test_partition_window_goes_to_dbt_as_dates_in_the_environment():
    import pytest

    from pipelines.defs.transform.assets import DbtBuildConfig, dbt_build_args, dbt_window

    assert dbt_build_args(DbtBuildConfig()) == ["build"]
    config = DbtBuildConfig(events_from="2026-09-01", events_to="2026-09-03")
    # the window goes by environment, never --vars (which would defeat dbt's partial parse)
    assert dbt_build_args(config) == ["build"]
    assert dbt_window(config) == ("2026-09-01", "2026-09-03")
    assert dbt_window(DbtBuildConfig()) is None
    assert dbt_build_args(DbtBuildConfig(full_refresh=True))[-1] == "--full-refresh"
    with pytest.raises(ValueError, match="go together"):
        dbt_build_args(DbtBuildConfig(events_from="2026-09-01"))
    with pytest.raises(ValueError, match="ends before it starts"):
        dbt_build_args(DbtBuildConfig(events_from="2026-09-03", events_to="2026-09-01"))
    with pytest.raises(ValueError, match="must be dates"):  # it is quoted into SQL
        dbt_build_args(DbtBuildConfig(events_from="2026-09-01' or 1=1 --", events_to="2026-09-03"))
    # which rows the data tests read: a scope dbt knows, or the run does not start
    assert dbt_build_args(DbtBuildConfig(test_scope="all")) == ["build"]
    with pytest.raises(ValueError, match="test_scope must be one of changed, all"):
        dbt_build_args(DbtBuildConfig(test_scope="everything"))


def test_seeds_and_marts_are_grouped_by_layer_too():
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"marts/fct_orders", "intermediate/int_orders", "reference/countries"} <= keys
    assert graph.get(dg.AssetKey(["marts", "fct_orders"])).group_name == "marts"


def test_an_ingest_run_window_becomes_the_dbt_window():
    from pipelines.defs.transform.automation import window_of

    assert window_of({"dagster/partition": "2026-09-02"}) == ("2026-09-02", "2026-09-02")
    assert window_of(
        {
            "dagster/asset_partition_range_start": "2026-09-01",
            "dagster/asset_partition_range_end": "2026-09-05",
        }
    ) == ("2026-09-01", "2026-09-05")
    assert window_of({}) is None
    assert defs.resolve_job_def("transform_lake") is not None
    assert "lake_after_ingest_sensor" in {s.name for s in defs.sensors or []}


def _parse_log(invocation) -> str:
    return (Path(invocation.target_path) / "dbt.log").read_text()


def test_dbt_runs_start_from_the_last_parse_of_their_home(lake_home: Path):
    """Each dbt run in Dagster has its own folder under the home's dbt target, starts from the
    partial parse the previous run left there (no full parse of the project each time), and
    only the newest folders are kept."""

    from pipelines.defs.transform.assets import (
        KEPT_INVOCATIONS,
        _keep_partial_parse,
        _window_env,
        prune_invocations,
    )
    from pipelines.defs.transform.project import (
        DBT_EXECUTABLE,
        LakeDbtCli,
        dbt_project,
        export_dbt_env,
    )

    export_dbt_env()
    target = lake_home / "dbt" / "target"
    dbt = LakeDbtCli(project_dir=dbt_project, dbt_executable=DBT_EXECUTABLE)
    first = dbt.cli(["parse"], raise_on_error=True)
    first.wait()
    assert Path(first.target_path).parent == target
    assert first.adapter is None  # no dbt adapter in Dagster's process (LakeDbtCli)
    # a new lake starts from the project's own parse: the profile names no lake
    # (ordertower/dbt_plugin.py), so dbt accepts it and parses nothing again
    assert "Unable to do partial parsing" not in _parse_log(first)
    assert "Partial parsing enabled" in _parse_log(first)
    _keep_partial_parse(first)
    # a run over a partition window (and another test scope) parses nothing again: what the
    # window changes is read when a test runs, never while the project is parsed
    with _window_env(("2026-09-01", "2026-09-02"), "all"):
        second = dbt.cli(["parse"], raise_on_error=True)
        second.wait()
    assert "Unable to do partial parsing" not in _parse_log(second)
    assert "no changes found, skipping parsing" in _parse_log(second)
    for n in range(KEPT_INVOCATIONS + 3):
        (target / f"old-{n:02d}").mkdir()
    assert prune_invocations() == 5
    assert len([p for p in target.iterdir() if p.is_dir()]) == KEPT_INVOCATIONS
    assert (target / "partial_parse.msgpack").exists()
