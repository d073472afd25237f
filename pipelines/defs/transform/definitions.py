"""The transform domain: the dbt project on the lake."""

import dagster as dg
from dagster_dbt import DbtCliResource

from pipelines.defs.transform.assets import (
    dbt_dispatch_marts,
    dbt_eta_marts,
    dbt_lake,
    dbt_risk_marts,
)
from pipelines.defs.transform.automation import lake_after_ingest_sensor, transform_lake_job
from pipelines.defs.transform.project import DBT_EXECUTABLE, dbt_project

defs = dg.Definitions(
    assets=[dbt_lake, dbt_risk_marts, dbt_dispatch_marts, dbt_eta_marts],
    jobs=[transform_lake_job],
    sensors=[lake_after_ingest_sensor],
    resources={"dbt": DbtCliResource(project_dir=dbt_project, dbt_executable=DBT_EXECUTABLE)},
)
