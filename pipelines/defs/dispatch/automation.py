"""When waves are planned: after the lake is built for a window, then the dispatch marts."""

import dagster as dg

from pipelines.defs.dispatch.assets import dispatch_plan, route_plans
from pipelines.defs.transform.assets import DISPATCH_PLANS_TAG, ml_marts
from pipelines.defs.transform.automation import transform_lake_job, window_of

dispatch_job = dg.define_asset_job(
    "plan_dispatch",
    selection=dg.AssetSelection.assets(dispatch_plan, route_plans),
    description="Plan the waves of a window (allocation, then van rounds).",
    partitions_def=dispatch_plan.partitions_def,
)

dispatch_marts_job = dg.define_asset_job(
    "dispatch_marts",
    selection=ml_marts(DISPATCH_PLANS_TAG),
    description="The marts on the plans: waves (plan vs baseline), shipments, routes and stops.",
)


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[transform_lake_job],
    request_job=dispatch_job,
    description="After the lake is built for a window, plan that window's waves.",
)
def dispatch_after_lake_sensor(context: dg.RunStatusSensorContext):
    config = context.dagster_run.run_config.get("ops", {}).get("dbt_lake", {}).get("config", {})
    window = (config.get("events_from"), config.get("events_to"))
    if not all(window):
        window = window_of(context.dagster_run.tags)
        if window is None:
            return dg.SkipReason("the lake run covered no partition window")
    from dagster._core.storage.tags import (
        ASSET_PARTITION_RANGE_END_TAG,
        ASSET_PARTITION_RANGE_START_TAG,
    )

    return dg.RunRequest(
        run_key=context.dagster_run.run_id,
        tags={ASSET_PARTITION_RANGE_START_TAG: window[0], ASSET_PARTITION_RANGE_END_TAG: window[1]},
    )


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[dispatch_job],
    request_job=dispatch_marts_job,
    description="After planning, rebuild the dispatch marts.",
)
def dispatch_marts_after_planning_sensor(context: dg.RunStatusSensorContext):
    return dg.RunRequest(run_key=context.dagster_run.run_id)
