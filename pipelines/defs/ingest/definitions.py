"""The ingest domain's definitions."""

import dagster as dg

from pipelines.defs.ingest.assets import ingest_assets
from pipelines.defs.ingest.automation import (
    ingest_daily_job,
    ingest_reference_job,
    landing_zone_sensor,
    reference_schedule,
)

defs = dg.Definitions(
    assets=ingest_assets,
    jobs=[ingest_daily_job, ingest_reference_job],
    schedules=[reference_schedule],  # the day's feeds: the daily job's schedule
    sensors=[landing_zone_sensor],
)
