"""The daily job: one new day end to end in one run, what the nightly schedule starts.

Ingest the day's partition of every feed -> dbt builds the lake (the marts incremental, the
day as the window) -> the day's risk features and scores, its dispatch wave and van rounds,
the ETAs of the open shipments -> the marts on all three, in one dbt invocation. Retraining
stays weekly (``risk_retrain``, ``eta_retrain``); the domain jobs and their sensors stay for
re-runs of one step (a day whose files changed: ``landing_zone_sensor``).
"""

import dagster as dg

from pipelines.defs.dispatch.assets import dispatch_plan, route_plans
from pipelines.defs.eta.assets import shipment_etas
from pipelines.defs.ingest.assets import partitioned_ingest_keys
from pipelines.defs.partitions import daily_partitions
from pipelines.defs.risk.assets import order_risk_features, order_risk_scores
from pipelines.defs.transform.assets import dbt_lake, dbt_ml_marts

daily_job = dg.define_asset_job(
    "daily",
    selection=dg.AssetSelection.assets(
        *partitioned_ingest_keys,
        dbt_lake,
        order_risk_features,
        order_risk_scores,
        dispatch_plan,
        route_plans,
        shipment_etas,
        dbt_ml_marts,
    ),
    partitions_def=daily_partitions,
    description=(
        "One new day end to end: ingest it, build the lake incrementally, score the day's orders, "
        "plan its wave and van rounds, refresh the ETAs, and the marts on each."
    ),
)

daily_schedule = dg.build_schedule_from_partitioned_job(
    daily_job,
    hour_of_day=2,
    minute_of_hour=30,
    description="After the feeds' nightly drop, yesterday's partition end to end.",
)

defs = dg.Definitions(jobs=[daily_job], schedules=[daily_schedule])
