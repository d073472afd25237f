"""The transform domain: the dbt project on the lake."""

import dagster as dg

from pipelines.defs.transform.assets import DBT_ASSETS
from pipelines.defs.transform.automation import (
    lake_after_ingest_sensor,
    lake_full_refresh_job,
    lake_full_refresh_schedule,
    transform_lake_job,
)
from pipelines.defs.transform.project import DBT_EXECUTABLE, LakeDbtCli, dbt_project

defs = dg.Definitions(
    assets=list(DBT_ASSETS),
    jobs=[transform_lake_job, lake_full_refresh_job],
    schedules=[lake_full_refresh_schedule],
    sensors=[lake_after_ingest_sensor],
    resources={"dbt": LakeDbtCli(project_dir=dbt_project, dbt_executable=DBT_EXECUTABLE)},
)
