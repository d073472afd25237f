"""The maintenance domain's definitions."""

import dagster as dg

from pipelines.defs.maintenance.jobs import (
    lake_maintenance_hourly,
    lake_maintenance_job,
    lake_maintenance_nightly,
)

defs = dg.Definitions(
    jobs=[lake_maintenance_job],
    schedules=[lake_maintenance_nightly, lake_maintenance_hourly],
)
