"""The live stream's tables as Dagster sees them, and the 5-minute status SLA as asset checks.

``ordertower stream`` (pipelines/stream) writes these tables continuously, outside Dagster
runs: they are external assets (``AssetSpec``), observed by the stream sensor, which reports
each new micro-batch as a runless materialisation and asks for the tracking marts to be
rebuilt. The checks measure what the customer-facing SLA promises: a streamed event's status is
visible in the tracking mart within 5 minutes of its publication.
"""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
import duckdb

from ordertower.lake import table_exists
from pipelines.defs.resources import LakeResource

#: the stream's visibility SLA (data_contracts/carrier_events.yaml: latency 5 min)
STATUS_SLA_SECONDS = 300
STREAM_GROUP = "stream"

carrier_events_stream = dg.AssetSpec(
    key=dg.AssetKey(["raw", "carrier_events_stream"]),
    group_name=STREAM_GROUP,
    kinds={"rabbitmq", "ducklake"},
    description=(
        "Carrier events received live from RabbitMQ by `ordertower stream`: normalised with the "
        "carrier mappings, validated with the carrier_events contract, one row per event id, "
        "acknowledged only after the commit. Malformed messages go to the dead-letter queue and "
        "quarantine.rejected_records."
    ),
    metadata={"writer": "ordertower stream", "contract": "data_contracts/carrier_events.yaml"},
)
exception_alerts = dg.AssetSpec(
    key=dg.AssetKey(["ops", "exception_alerts"]),
    group_name=STREAM_GROUP,
    deps=[carrier_events_stream],
    kinds={"ducklake"},
    description=(
        "Exception alerts raised on the stream by the rules in ml/alerts/rules.yaml, one per "
        "episode, with impact and priced alternatives; committed with the events that raised them."
    ),
    metadata={"writer": "ordertower stream", "rules": "ml/alerts/rules.yaml"},
)
crm_outbox = dg.AssetSpec(
    key=dg.AssetKey(["ops", "crm_outbox"]),
    group_name=STREAM_GROUP,
    deps=[exception_alerts],
    kinds={"ducklake"},
    description=(
        "The transactional outbox of customer messages: one per alert, written with the alert, "
        "delivered to the CRM over HTTP with retries and an idempotency key."
    ),
    metadata={"writer": "ordertower stream (pipelines/crm)"},
)
shipment_eta_updates = dg.AssetSpec(
    key=dg.AssetKey(["ml", "shipment_eta_updates"]),
    group_name=STREAM_GROUP,
    deps=[carrier_events_stream],
    kinds={"lightgbm", "ducklake"},
    description="ETAs re-predicted by the champion ETA model as each shipment's events arrive.",
    metadata={"writer": "ordertower stream"},
)

TRACKING_MART = dg.AssetKey(["marts", "fct_tracking_events"])

PENDING_SQL = """
select count(*) as pending, min(s._published_at) as oldest_published
from raw.carrier_events_stream as s
where not exists (
    select 1 from marts.fct_tracking_events as m where m.event_id = s.event_id
)
"""


def status_lag(con: duckdb.DuckDBPyConnection, now: datetime | None = None) -> dict:
    """Streamed events not yet in the tracking mart, and how long the oldest has waited."""
    now = now or datetime.now(UTC)
    if not (
        table_exists(con, "raw", "carrier_events_stream")
        and table_exists(con, "marts", "fct_tracking_events")
    ):
        return {"pending": 0, "oldest_wait_s": 0.0, "streamed": 0}
    pending, oldest = con.execute(PENDING_SQL).fetchone()
    streamed = con.execute("select count(*) from raw.carrier_events_stream").fetchone()[0]
    wait = (now - oldest).total_seconds() if oldest is not None else 0.0
    return {
        "pending": int(pending),
        "oldest_wait_s": round(max(wait, 0.0), 1),
        "streamed": int(streamed),
    }


@dg.asset_check(
    asset=TRACKING_MART,
    name="stream_status_within_5_minutes",
    description=(
        "Every event streamed more than 5 minutes ago is in fct_tracking_events (the contract's "
        "latency SLA). Fails when the oldest event still waiting was published longer ago."
    ),
)
def stream_status_within_5_minutes(lake: LakeResource) -> dg.AssetCheckResult:
    con = lake.connect(read_only=True)
    try:
        lag = status_lag(con)
    finally:
        con.close()
    return dg.AssetCheckResult(
        passed=lag["oldest_wait_s"] <= STATUS_SLA_SECONDS,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "events waiting": lag["pending"],
            "oldest wait (s)": lag["oldest_wait_s"],
            "streamed events": lag["streamed"],
            "SLA (s)": STATUS_SLA_SECONDS,
        },
    )
