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

defs = dg.Definitions(
    assets=[carrier_events_stream, exception_alerts, crm_outbox, shipment_eta_updates],
    asset_checks=[stream_status_within_5_minutes],
    jobs=[refresh_tracking_marts_job],
    sensors=[tracking_marts_on_stream],
)
