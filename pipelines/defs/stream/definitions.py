"""The stream domain's definitions."""

import dagster as dg

from pipelines.defs.stream.assets import (
    carrier_events_stream,
    crm_outbox,
    exception_alerts,
    shipment_eta_updates,
    stream_status_within_5_minutes,
)
from pipelines.defs.stream.automation import refresh_tracking_marts_job, tracking_marts_on_stream
from pipelines.defs.stream.health import stream_consumer_health, stream_consumer_healthy

defs = dg.Definitions(
    assets=[carrier_events_stream, exception_alerts, crm_outbox, shipment_eta_updates],
    asset_checks=[stream_status_within_5_minutes, stream_consumer_healthy],
    jobs=[refresh_tracking_marts_job],
    sensors=[tracking_marts_on_stream, stream_consumer_health],
)
