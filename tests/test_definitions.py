"""The Dagster code location loads, and its asset graph is what we expect (snapshot)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.definitions import defs

ROOT = Path(__file__).resolve().parent.parent


def test_definitions_snapshot(snapshot):
    repo = defs.get_repository_def()
    graph = repo.asset_graph
    assert {
        "assets": sorted(k.to_user_string() for k in graph.get_all_asset_keys()),
        "checks": sorted(
            f"{c.asset_key.to_user_string()}:{c.name}" for c in graph.asset_check_keys
        ),
        "jobs": sorted(j for j in repo.job_names if not j.startswith("__")),
        "schedules": sorted(s.name for s in repo.schedule_defs),
        "sensors": sorted(s.name for s in repo.sensor_defs),
    } == snapshot


def test_conservation_checks_are_blocking():
    graph = defs.get_repository_def().asset_graph
    for key in graph.asset_check_keys:
        if key.name not in ("received_equals_landed_plus_quarantined", "contract"):
            continue  # dbt tests: their blocking follows dbt build's semantics
        spec = graph.get_check_spec(key)
        assert spec.blocking == (key.name == "received_equals_landed_plus_quarantined")


def test_the_nightly_schedule_runs_one_day_end_to_end():
    """The daily job holds every step of a new day, in one run; retraining is not among them."""
    repo = defs.get_repository_def()
    job = repo.get_job("daily")
    keys = {k.to_user_string() for k in job.asset_layer.executable_asset_keys}
    for step in (
        "raw/orders",
        "raw/carrier_events",
        "marts/fct_orders",
        "marts/kpi_daily",
        "ml/order_risk_scores",
        "marts/fct_order_risk",
        "ml/dispatch_waves",
        "ml/route_plans",
        "marts/fct_route_plans",
        "ml/shipment_etas",
        "marts/fct_shipment_eta",
    ):
        assert step in keys, step
    assert not {"ml/risk_model_candidate", "ml/eta_model_candidate"} & keys
    schedule = repo.get_schedule_def("daily_schedule")
    assert schedule.job_name == "daily" and schedule.cron_schedule == "30 2 * * *"
    # no second nightly run of the same feeds
    assert not [s for s in repo.schedule_defs if s.job_name == "ingest_daily"]


def test_a_weekly_full_refresh_takes_in_what_incremental_runs_do_not_follow():
    repo = defs.get_repository_def()
    schedule = repo.get_schedule_def("lake_full_refresh_schedule")
    assert schedule.job_name == "lake_full_refresh" and schedule.cron_schedule == "0 4 * * 0"
    job = repo.get_job("lake_full_refresh")
    config = job.run_config_schema.config_type.fields["ops"].config_type.fields["dbt_lake"]
    assert config.default_value["config"]["full_refresh"] is True


def test_the_lake_build_takes_its_window_from_a_partitioned_run():
    from pipelines.defs.transform.assets import window_of

    assert window_of({"dagster/partition": "2026-09-01"}) == ("2026-09-01", "2026-09-01")
    assert window_of({}) is None


def test_a_check_hung_on_an_unselected_model_is_not_run_by_dbt_indirect_selection():
    """The PII guard depends on every staging view and is the check of stg_oms__orders: a run
    of the tracking marts (two of those views among them) leaves it out, as Dagster leaves out
    the checks of assets it does not build; a run with stg_oms__orders runs it."""
    import dagster as dg

    from pipelines.defs.stream.automation import TRACKING_MARTS
    from pipelines.defs.transform.assets import _hung_tests, _tests_hung_on_unselected

    pii = "assert_no_pii_columns_in_staging"
    assert _hung_tests()[pii] == dg.AssetKey(["staging", "stg_oms__orders"])
    assert pii in _tests_hung_on_unselected(set(TRACKING_MARTS))
    orders = {*TRACKING_MARTS, dg.AssetKey(["staging", "stg_oms__orders"])}
    assert pii not in _tests_hung_on_unselected(orders)


@pytest.mark.slow
def test_dagster_definitions_validate(tmp_path: Path):
    env = {
        **os.environ,
        "DAGSTER_HOME": str(tmp_path),
        "ORDERTOWER_HOME": str(tmp_path),
        "VIRTUAL_ENV": str(Path(sys.executable).parent.parent),
    }
    result = subprocess.run(
        [str(Path(sys.executable).parent / "dg"), "check", "defs"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_landing_zone_sensor_requests_changed_days(lake_home: Path):
    import dagster as dg
    import landing_factory as lf

    from pipelines.defs.ingest.automation import landing_zone_sensor

    landing = lake_home / "landing"
    lf.reference(landing)
    lf.clean_day(landing)
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance)
        first = list(landing_zone_sensor(context))
        assert [r.partition_key for r in first] == ["2026-08-20"]
        again = dg.build_sensor_context(instance=instance, cursor=context.cursor)
        assert all(isinstance(r, dg.SkipReason) for r in landing_zone_sensor(again))
        lf.broken_day(landing)
        third = dg.build_sensor_context(instance=instance, cursor=again.cursor)
        assert [r.partition_key for r in landing_zone_sensor(third)] == ["2026-08-21"]
