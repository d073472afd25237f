"""Lake maintenance as a Dagster job: one thin op over :mod:`pipelines.maintenance`.

The op takes the ``lake_writer`` pool, the pool every asset that writes the lake takes (limit 1
in the generated ``dagster.yaml``), so maintenance never runs beside a materialisation. The
live stream writes outside Dagster; maintenance retries its steps when the stream holds the
catalog, and the stream retries its batch when maintenance does (DuckLake detects the conflict).
"""

import dagster as dg

from pipelines.defs.resources import LAKE_WRITER_POOL


class MaintenanceConfig(dg.Config):
    #: ``light`` (hourly): flush, thin, expire, merge, clean-up; ``full`` (nightly): also
    #: orphaned files and the SQLite catalog's free pages
    mode: str = "full"
    dry_run: bool = False


@dg.op(
    pool=LAKE_WRITER_POOL,
    description="Expire snapshots beyond the retention, thin the stream's, merge small files, "
    "delete unreferenced and orphaned files; counts before and after go to ops.lake_maintenance.",
)
def maintain_lake(context: dg.OpExecutionContext, config: MaintenanceConfig) -> dg.Output:
    from pipelines.maintenance import NoLake, maintain

    try:
        report = maintain(mode=config.mode, dry_run=config.dry_run)
    except NoLake as exc:  # a fresh install: the schedule has nothing to do yet
        context.log.info(str(exc))
        return dg.Output(None, metadata={"mode": config.mode, "status": "no lake"})
    context.log.info(report.summary())
    b, a = report.before, report.after
    return dg.Output(
        None,
        metadata={
            "mode": config.mode,
            "status": report.status,
            **{f"{k} before": b.get(k) for k in ("snapshots", "data_files", "catalog_bytes")},
            **{f"{k} after": a.get(k) for k in ("snapshots", "data_files", "catalog_bytes")},
            "steps": dg.MetadataValue.json(report.steps),
        },
    )


@dg.job(
    name="lake_maintenance",
    description="DuckLake upkeep (docs/lake.md, Lake upkeep): exclusive with every lake writer.",
    tags={"domain": "maintenance"},
)
def lake_maintenance_job() -> None:
    maintain_lake()


def _run_config(mode: str) -> dict:
    return {"ops": {"maintain_lake": {"config": {"mode": mode, "dry_run": False}}}}


#: nightly at 02:15 UTC, before the weekly retraining (03:00) and after the evening's builds
lake_maintenance_nightly = dg.ScheduleDefinition(
    name="lake_maintenance_nightly",
    job=lake_maintenance_job,
    cron_schedule="15 2 * * *",
    execution_timezone="UTC",
    run_config=_run_config("full"),
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Full pass: expiry, thinning, merge, clean-up, orphaned files, catalog vacuum.",
)

#: every hour at :45 (the nightly pass covers 02:15): keeps the stream's snapshots and small
#: files from piling up during the day
lake_maintenance_hourly = dg.ScheduleDefinition(
    name="lake_maintenance_hourly",
    job=lake_maintenance_job,
    cron_schedule="45 * * * *",
    execution_timezone="UTC",
    run_config=_run_config("light"),
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Light pass: flush inlined rows, thin and expire snapshots, merge, clean-up.",
)
