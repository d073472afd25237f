"""The dispatch domain's definitions."""

import dagster as dg

from pipelines.defs.dispatch.assets import dispatch_plan, route_plans
from pipelines.defs.dispatch.automation import (
    dispatch_after_lake_sensor,
    dispatch_job,
    dispatch_marts_after_planning_sensor,
    dispatch_marts_job,
)

defs = dg.Definitions(
    assets=[dispatch_plan, route_plans],
    jobs=[dispatch_job, dispatch_marts_job],
    sensors=[dispatch_after_lake_sensor, dispatch_marts_after_planning_sensor],
)
