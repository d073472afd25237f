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

Before each batch the rules (``rules.yaml``) and the templates (``messages.yaml``) are re-read
if their file changed; both are validated at start (a bad file stops the start with a clear
message) and on every reload, where a bad edit keeps the last good version and raises one
operational alert (``ops.operational_alerts``). The alert clock moves with the batch's landed
events under the clock guard, and alerts of a storming rule are stored suppressed, without a
customer message (:mod:`ml.alerts.detect`).
"""

from __future__ import annotations

import logging
import time

import duckdb
import pandas as pd

from ml.alerts import messages as crm_messages
from ml.alerts.detect import Detector
from ml.alerts.ops import raise_operational_alert
from ml.alerts.rules import RuleSet, RulesReloader
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

#: the alerts each order was already messaged about (the repeat rule of messages.yaml)
TOLD_SQL = """
select a.order_id, a.severity, a.clock_at
from ops.crm_outbox as o
join ops.exception_alerts as a using (alert_id)
where a.order_id in (select unnest(?))
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
        self,
        con: duckdb.DuckDBPyConnection,
        eta: bool = True,
        alerts: bool = True,
        rules: RuleSet | None = None,
        templates_path=None,
        rules_path=None,
    ) -> None:
        con.execute(ETA_DDL)
        outbox.ensure_outbox(con)
        self.scorer = _load_eta_scorer() if eta else None
        # validated at start: bad rules or templates stop the stream before it takes a message
        reloader = RulesReloader(rules_path) if alerts and rules is None else None
        self.detector = Detector(con, rules=rules, reloader=reloader) if alerts else None
        self.templates = crm_messages.TemplateReloader(templates_path) if alerts else None
        self.latencies: list[float] = []

    def _reload(self, con: duckdb.DuckDBPyConnection) -> None:
        """Pick up edits of rules.yaml and messages.yaml; a bad edit keeps the last good one."""
        self.detector.reload(con)
        _, error = self.templates.poll()
        if error is not None:
            raise_operational_alert(
                con,
                "templates_reload_failed",
                f"{error} -- the last good templates stay in use",
                (str(self.templates.path), self.templates.stamp),
                subject=self.templates.path.name,
            )

    def __call__(
        self, con: duckdb.DuckDBPyConnection, landed: pd.DataFrame, result: BatchResult
    ) -> None:
        etas = None
        if self.detector is not None:
            self._reload(con)
            self.detector.advance(landed)
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
        new = new.loc[~new["suppressed"].fillna(False).astype(bool)]  # a storm: no messages
        if new.empty:
            return
        templates = self.templates.current
        told = con.execute(TOLD_SQL, [new["order_id"].dropna().unique().tolist()]).df()
        new = crm_messages.worth_a_message(new, templates, told)
        if new.empty:
            return
        customers = con.execute(CUSTOMERS_SQL, [new["customer_id"].dropna().unique().tolist()]).df()
        composed = crm_messages.compose(new, customers, templates)
        result.messages = outbox.enqueue(con, composed)
        log.debug(
            "%d alerts, %d messages in %.2fs", len(new), result.messages, time.monotonic() - started
        )
