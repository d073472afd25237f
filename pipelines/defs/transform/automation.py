"""When a day of feeds has landed, build the lake on it: dbt with that day's window."""

import dagster as dg

from pipelines.defs.ingest.automation import ingest_daily_job
from pipelines.defs.transform.assets import dbt_lake, window_of

__all__ = [
    "lake_after_ingest_sensor",
    "lake_full_refresh_job",
    "lake_full_refresh_schedule",
    "transform_lake_job",
    "window_of",
]

lake_full_refresh_job = dg.define_asset_job(
    "lake_full_refresh",
    selection=dg.AssetSelection.assets(dbt_lake),
    config={"ops": {"dbt_lake": {"config": {"full_refresh": True}}}},
    description=(
        "dbt build of the whole lake with --full-refresh: the incremental marts rebuilt whole, which "
        "takes in what they do not follow (a changed seed or reference snapshot, withdrawn records)."
    ),
)

#: weekly, on Sunday night, after the nightly daily run (02:30) has finished
lake_full_refresh_schedule = dg.ScheduleDefinition(
    job=lake_full_refresh_job,
    cron_schedule="0 4 * * 0",
    execution_timezone="UTC",
    description="Weekly full refresh of the lake (dbt/macros/incremental.sql: what incremental runs do not follow).",
)

transform_lake_job = dg.define_asset_job(
    "transform_lake",
    selection=dg.AssetSelection.assets(dbt_lake),
    description="dbt build of the whole lake (staging, intermediate, marts and their tests).",
)


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
