"""Event-driven refresh of the tracking marts as the stream lands micro-batches."""

from __future__ import annotations

import dagster as dg

from ordertower.lake import LakeError, table_exists
from pipelines.defs.resources import LakeResource
from pipelines.defs.stream.assets import (
    TRACKING_MART,
    carrier_events_stream,
    crm_outbox,
    exception_alerts,
    shipment_eta_updates,
    stream_status_within_5_minutes,
)

#: the dbt models that show the stream: events, the order timeline, exceptions, alerts, ETAs.
#: The staging views over tables the stream creates are rebuilt too: a view built before its
#: table existed is the empty placeholder until dbt builds it again.
TRACKING_MARTS = [
    dg.AssetKey(["staging", "stg_ops__exception_alerts"]),
    dg.AssetKey(["staging", "stg_ops__crm_outbox"]),
    dg.AssetKey(["staging", "stg_ml__shipment_etas"]),
    TRACKING_MART,
    dg.AssetKey(["marts", "fct_order_timeline"]),
    dg.AssetKey(["marts", "fct_order_exceptions"]),
    dg.AssetKey(["marts", "fct_exception_alerts"]),
    dg.AssetKey(["marts", "fct_shipment_eta"]),
]

refresh_tracking_marts_job = dg.define_asset_job(
    "refresh_tracking_marts",
    selection=dg.AssetSelection.assets(*TRACKING_MARTS),
    description=(
        "Rebuild the tracking marts from the events streamed since the last build (fct_tracking_events "
        "is incremental) and check the 5-minute status SLA."
    ),
)

#: how often the sensor looks for new micro-batches: well inside the 5-minute SLA, while a
#: rebuild of the tracking marts (~20-40 s) never queues behind the previous one
SENSOR_INTERVAL_S = 60


@dg.sensor(
    job=refresh_tracking_marts_job,
    minimum_interval_seconds=SENSOR_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "When `ordertower stream` has committed micro-batches since the last look, report them as "
        "materialisations of the stream's tables and rebuild the tracking marts."
    ),
)
def tracking_marts_on_stream(context: dg.SensorEvaluationContext, lake: LakeResource):
    try:
        con = lake.connect(read_only=True)
    except LakeError as exc:
        return dg.SkipReason(f"no lake yet: {exc}")
    try:
        if not table_exists(con, "ops", "stream_batches"):
            return dg.SkipReason("the stream has not landed a batch yet")
        row = con.execute(
            "select count(*), sum(landed), sum(alerts), sum(messages), sum(eta_updates), "
            "max(committed_at), max(max_event_at) from ops.stream_batches where committed_at > "
            "coalesce(cast(? as timestamptz), timestamptz '1970-01-01')",
            [context.cursor],
        ).fetchone()
    finally:
        con.close()
    batches, landed, alerts, messages, etas, last_commit, max_event = row
    if not batches:
        return dg.SkipReason("no new micro-batch since the last look")
    cursor = last_commit.isoformat()
    meta = {"batches": int(batches), "up to": cursor}
    for spec, count in (
        (carrier_events_stream, landed),
        (exception_alerts, alerts),
        (crm_outbox, messages),
        (shipment_eta_updates, etas),
    ):
        if count:
            context.instance.report_runless_asset_event(
                dg.AssetMaterialization(
                    asset_key=spec.key,
                    description="written by ordertower stream",
                    metadata={**meta, "rows": int(count), "latest event": str(max_event)},
                )
            )
    context.update_cursor(cursor)
    return dg.RunRequest(run_key=f"stream-{cursor}", tags={"ordertower/trigger": "stream"})


__all__ = [
    "refresh_tracking_marts_job",
    "stream_status_within_5_minutes",
    "tracking_marts_on_stream",
]
