"""dbt models as Dagster assets: `dbt build` (models, then their tests as asset checks)."""

import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets

from pipelines.defs.resources import LAKE_WRITER_POOL
from pipelines.defs.transform.project import dbt_project, export_dbt_env, translator


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    dagster_dbt_translator=translator,
    pool=LAKE_WRITER_POOL,
    name="dbt_lake",
)
def dbt_lake(context: dg.AssetExecutionContext, dbt: DbtCliResource):
    export_dbt_env()  # the lake may have been repointed since the code location loaded
    yield from dbt.cli(["build"], context=context).stream()
