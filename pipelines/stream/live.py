"""What each micro-batch does after its events are stored, inside the same lake transaction:

1. **ETAs**: the champion ETA model (``ml/eta``) re-predicts every shipment the batch touched;
   predictions are appended to ``ml.shipment_eta_updates`` (the latest per shipment is current);
2. **alerts**: the exception rules (``ml/alerts/rules.yaml``) run on the new events, the new
   ETAs and, every ``sweep_every_s``, on every open leg; new episodes are stored in
   ``ops.exception_alerts`` with their impact and priced alternatives;
3. **customer messages**: each new alert's message is composed (``pipelines/crm``) and put in
   the CRM outbox ``ops.crm_outbox``; the sender delivers it after the commit.

So an event, the alert it raised and the message to the customer commit together or not at all:
a crash before the commit replays the batch, which finds nothing new to store.
"""

from __future__ import annotations

import logging
import time

import duckdb
import pandas as pd

from ml.alerts.detect import Detector
from pipelines.crm import messages as crm_messages
from pipelines.crm import outbox
from pipelines.stream.land import BatchResult

log = logging.getLogger("ordertower.stream")

ETA_TABLE = "ml.shipment_eta_updates"
ETA_DDL = f"""
create table if not exists {ETA_TABLE} (
    shipment_id varchar not null,
    order_id varchar,
    tracking_ref varchar,
    as_of timestamptz not null,
    predicted_delivery_at timestamptz,
    remaining_hours double,
    planned_delivery_at timestamptz,
    model_version varchar,
    batch_id varchar not null,
    predicted_at timestamptz not null
)"""

CUSTOMERS_SQL = """
select customer_id, split_part(trim(full_name), ' ', 1) as first_name, language, tier
from raw.customers
where customer_id in (select unnest(?))
qualify row_number() over (partition by customer_id order by _ingested_at desc) = 1
"""


def _load_eta_scorer():
    """The champion ETA model, or None (no model trained yet: alerts still run on events)."""
    try:
        from ml.eta.live import EtaScorer
    except ImportError:  # pragma: no cover - the ETA package is part of the platform
        return None
    try:
        return EtaScorer.load()
    except Exception as exc:  # noqa: BLE001 - a broken registry must not stop the stream
        log.warning("ETA model unavailable, streaming without live ETAs: %s", exc)
        return None


class LiveHook:
    """The consumer's hook: ETAs, alerts and the outbox for each landed batch."""

    def __init__(
        self, con: duckdb.DuckDBPyConnection, eta: bool = True, alerts: bool = True
    ) -> None:
        con.execute(ETA_DDL)
        outbox.ensure_outbox(con)
        self.scorer = _load_eta_scorer() if eta else None
        self.detector = Detector(con) if alerts else None
        self.latencies: list[float] = []

    def __call__(
        self, con: duckdb.DuckDBPyConnection, landed: pd.DataFrame, result: BatchResult
    ) -> None:
        etas = None
        if self.detector is not None:
            self.detector.advance(result.max_event_at)
        if self.scorer is not None and not landed.empty:
            as_of = self.detector.clock() if self.detector is not None else None
            refs = landed["tracking_ref"].dropna().unique().tolist()
            etas = self.scorer.predict(con, refs, as_of=as_of)
            if etas is not None and not etas.empty:
                etas = etas.assign(
                    batch_id=result.batch_id, predicted_at=pd.Timestamp.now(tz="UTC")
                )
                con.register("_etas", etas)
                try:
                    con.execute(
                        f"insert into {ETA_TABLE} select shipment_id, order_id, tracking_ref, as_of, "
                        "predicted_delivery_at, remaining_hours, planned_delivery_at, "
                        "cast(model_version as varchar), batch_id, predicted_at from _etas"
                    )
                finally:
                    con.unregister("_etas")
                result.eta_updates = len(etas)
        if self.detector is None:
            return
        started = time.monotonic()
        alerts = self.detector.detect(con, landed, etas, batch_id=result.batch_id)
        new = self.detector.store(con, alerts)
        result.alerts = len(new)
        if new.empty:
            return
        customers = con.execute(CUSTOMERS_SQL, [new["customer_id"].dropna().unique().tolist()]).df()
        composed = crm_messages.compose(new, customers)
        result.messages = outbox.enqueue(con, composed)
        log.debug(
            "%d alerts, %d messages in %.2fs", len(new), result.messages, time.monotonic() - started
        )
