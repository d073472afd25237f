"""Jobs, schedules and the landing-zone sensor of the ingest domain."""

from __future__ import annotations

import json

import dagster as dg

from ordertower.settings import get_settings
from pipelines.defs.ingest.assets import partitioned_ingest_keys, reference_ingest_keys
from pipelines.defs.partitions import daily_partitions
from pipelines.ingest.runner import source_files
from pipelines.ingest.sources import SOURCES

ingest_daily_job = dg.define_asset_job(
    "ingest_daily",
    selection=dg.AssetSelection.assets(*partitioned_ingest_keys),
    partitions_def=daily_partitions,
    description="Land one day of every partitioned feed (the daily job does it nightly, with the "
    "rest of the day's work; this job re-lands a day whose files changed).",
)
ingest_reference_job = dg.define_asset_job(
    "ingest_reference",
    selection=dg.AssetSelection.assets(*reference_ingest_keys),
    description="Land the reference snapshots (warehouses, carriers, SKUs, IP ranges, customers).",
)

reference_schedule = dg.ScheduleDefinition(
    job=ingest_reference_job, cron_schedule="0 2 * * *", execution_timezone="UTC"
)


@dg.sensor(
    job=ingest_daily_job,
    minimum_interval_seconds=60,
    description="Lands a day again whenever a file of that day appears or changes in the landing zone.",
)
def landing_zone_sensor(context: dg.SensorEvaluationContext):
    landing = get_settings().landing_dir
    seen: dict[str, float] = json.loads(context.cursor) if context.cursor else {}
    latest: dict[str, float] = {}
    for source in SOURCES:
        if not source.partitioned:
            continue
        head = source.pattern.split("date={date}")[0]
        for folder in landing.glob(f"{head}date=*"):
            key = folder.name.removeprefix("date=")
            # lstat: a link (refused at ingestion) must not stop the sensor, even a broken one
            mtimes = [p.lstat().st_mtime for p in source_files(source, landing, key)]
            if mtimes:
                latest[key] = max(latest.get(key, 0.0), *mtimes)
    valid = set(daily_partitions.get_partition_keys())
    changed = sorted(k for k, m in latest.items() if m > seen.get(k, 0.0) and k in valid)
    for key in changed:
        yield dg.RunRequest(run_key=f"{key}:{latest[key]}", partition_key=key)
    context.update_cursor(json.dumps({**seen, **latest}))
    if not changed:
        yield dg.SkipReason("no new or changed landing files")
