"""When a day of feeds has landed, build the lake on it: dbt with that day's window."""

import dagster as dg
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    PARTITION_NAME_TAG,
)

from pipelines.defs.ingest.automation import ingest_daily_job
from pipelines.defs.transform.assets import dbt_lake

transform_lake_job = dg.define_asset_job(
    "transform_lake",
    selection=dg.AssetSelection.assets(dbt_lake),
    description="dbt build of the whole lake (staging, intermediate, marts and their tests).",
)


def window_of(tags: dict[str, str]) -> tuple[str, str] | None:
    """The partition window an ingest run covered, from its tags (one day or a range)."""
    if tags.get(ASSET_PARTITION_RANGE_START_TAG) and tags.get(ASSET_PARTITION_RANGE_END_TAG):
        return tags[ASSET_PARTITION_RANGE_START_TAG], tags[ASSET_PARTITION_RANGE_END_TAG]
    if tags.get(PARTITION_NAME_TAG):
        return tags[PARTITION_NAME_TAG], tags[PARTITION_NAME_TAG]
    return None


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[ingest_daily_job],
    request_job=transform_lake_job,
    description="After a successful ingest of a day (or a range), dbt builds the lake with that window.",
)
def lake_after_ingest_sensor(context: dg.RunStatusSensorContext):
    window = window_of(context.dagster_run.tags)
    config = (
        {"ops": {"dbt_lake": {"config": {"events_from": window[0], "events_to": window[1]}}}}
        if window
        else {}
    )
    return dg.RunRequest(run_key=context.dagster_run.run_id, run_config=config)
