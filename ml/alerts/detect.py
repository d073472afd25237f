"""Detect exception alerts on the live stream and price what can be done about them.

Called by the stream consumer inside each micro-batch's lake transaction (so an alert commits
with the events that raised it, or not at all):

* **event rules** (``carrier_event``) test the events the batch just landed;
* **predicted late** tests the ETAs the batch just predicted against the promised day;
* **time rules** (``stuck``, ``milestone_missed``) sweep every open leg every ``sweep_every_s``
  seconds against the stream clock (the latest event time received, or the wall clock).

Every alert is one episode with a deterministic id (rule + leg or shipment + trigger), and is
stored only if that id is not stored yet: a redelivered batch or a second sweep never alerts
twice. Each alert carries its impact (order, value, promise at risk) and the priced
alternatives of :mod:`ml.alerts.alternatives`.
"""

from __future__ import annotations

import hashlib
import logging
import time
from datetime import UTC, datetime, timedelta

import duckdb
import pandas as pd

from ml.alerts.alternatives import latest_stock, price_alternatives
from ml.alerts.rules import Rule, RuleSet, load_rules
from ml.dispatch.config import DispatchPolicy, load_policy
from ml.dispatch.network import Network, NetworkError
from ml.dispatch.store import load_network

log = logging.getLogger("ordertower.alerts")

ALERTS_TABLE = "ops.exception_alerts"
ALERT_COLUMNS = {
    "alert_id": "varchar not null",
    "rule": "varchar not null",
    "reason": "varchar not null",
    "sub_reason": "varchar",
    "severity": "varchar not null",
    "sla_minutes": "integer not null",
    "shipment_id": "varchar not null",
    "order_id": "varchar",
    "customer_id": "varchar",
    "tracking_ref": "varchar",
    "carrier_id": "varchar",
    "mode": "varchar",
    "service_level": "varchar",
    "trigger_event_id": "varchar",
    "event_at": "timestamptz",
    "clock_at": "timestamptz not null",
    "published_at": "timestamptz",
    "detected_at": "timestamptz not null",
    "promised_delivery_date": "date",
    "eta_at": "timestamptz",
    "hours_late": "double",
    "promise_at_risk": "boolean not null",
    "order_value_eur": "decimal(18,2)",
    "recommended_option": "varchar",
    "recommended_action": "varchar",
    "alternatives": "varchar",
    "batch_id": "varchar",
}
ALERTS_DDL = (
    f"create table if not exists {ALERTS_TABLE} (\n  "
    + ",\n  ".join(f"{k} {v}" for k, v in ALERT_COLUMNS.items())
    + "\n)"
)
TERMINAL_CODES = ("DELIVERED", "RETURNED", "AVAILABLE_FOR_PICKUP")

CONTEXT_SQL = """
select
    s.shipment_id, s.order_id, s.warehouse_id, s.service_level, s.total_weight_kg,
    s.promised_delivery_date, o.customer_id, o.order_total as order_value_eur,
    o.shipping_lat_approx as dest_lat, o.shipping_lon_approx as dest_lon,
    o.shipping_country_code as dest_country, coalesce(c.is_eu, false) as dest_eu,
    plan.planned_delivery_at
from staging.stg_tms__shipments as s
left join staging.stg_oms__orders as o on o.order_id = s.order_id
left join staging.countries as c on c.country_code = o.shipping_country_code
left join (
    select shipment_id, max(planned_arrival_at) as planned_delivery_at
    from staging.stg_tms__shipment_legs group by 1
) as plan on plan.shipment_id = s.shipment_id
where s.shipment_id in (select unnest(?))
qualify row_number() over (partition by s.shipment_id order by s.ingested_at desc) = 1
"""


def alert_id(rule: str, *episode: object) -> str:
    key = "|".join([rule, *(str(e) for e in episode)])
    return hashlib.sha1(key.encode()).hexdigest()[:24]


def ensure_alerts_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(ALERTS_DDL)


def _promise_end(promised: pd.Series) -> pd.Series:
    """The end of the promised day (UTC): a delivery before it keeps the promise."""
    return pd.to_datetime(promised).dt.tz_localize(UTC) + pd.Timedelta(days=1)


class Detector:
    """Holds the rules, the network and a stock snapshot across batches; stateless per alert."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        rules: RuleSet | None = None,
        dispatch: DispatchPolicy | None = None,
        stock_refresh_s: float = 600.0,
    ) -> None:
        self.rules = rules or load_rules()
        self.dispatch = dispatch or load_policy()
        self.stock_refresh_s = stock_refresh_s
        ensure_alerts_table(con)
        self.network: Network | None = None
        try:
            self.network = load_network(con, self.dispatch)
        except (duckdb.Error, NetworkError) as exc:  # no marts yet: alerts without alternatives
            log.warning("alternatives disabled until the lake has warehouses: %s", exc)
        self._stock: pd.DataFrame | None = None
        self._stock_at = 0.0
        self._last_sweep = 0.0
        row = con.execute("select max(event_ts) from raw.carrier_events_stream").fetchone()
        self.watermark: datetime | None = row[0] if row else None

    # ------------------------------------------------------------------ clock and context

    def advance(self, max_event_at: datetime | None) -> None:
        if max_event_at is not None and (self.watermark is None or max_event_at > self.watermark):
            self.watermark = max_event_at

    def clock(self) -> datetime:
        if self.rules.clock == "wall" or self.watermark is None:
            return datetime.now(UTC)
        return pd.Timestamp(self.watermark).tz_convert(UTC).to_pydatetime()

    def _stock_now(self, con) -> pd.DataFrame:
        if self._stock is None or time.monotonic() - self._stock_at > self.stock_refresh_s:
            try:
                self._stock = latest_stock(con)
            except duckdb.Error:
                self._stock = pd.DataFrame(columns=["warehouse_id", "sku_id", "available_qty"])
            self._stock_at = time.monotonic()
        return self._stock

    @staticmethod
    def _legs(con, refs: list[str]) -> pd.DataFrame:
        return con.execute(
            "select tracking_ref, shipment_id, leg_no, mode as leg_mode, carrier_id as leg_carrier "
            "from staging.stg_tms__shipment_legs where tracking_ref in (select unnest(?))",
            [refs],
        ).df()

    # ------------------------------------------------------------------ rules

    def _event_alerts(self, con, events: pd.DataFrame) -> pd.DataFrame:
        rules = self.rules.of_kind("carrier_event")
        if events is None or events.empty or not rules:
            return pd.DataFrame()
        actual = events[events["event_classifier"] == "ACT"]
        hits = []
        for rule in rules:
            mask = actual["event_code"].isin(rule.when["event_code"])
            if "exception_reason" in rule.when:
                mask &= actual["exception_reason"].isin(rule.when["exception_reason"])
            part = actual.loc[mask]
            if part.empty:
                continue
            part = part.sort_values("event_ts").drop_duplicates("tracking_ref")
            hits.append(
                pd.DataFrame(
                    {
                        "rule": rule.id,
                        "tracking_ref": part["tracking_ref"].to_numpy(),
                        "trigger_event_id": part["event_id"].to_numpy(),
                        "event_at": part["event_ts"].to_numpy(),
                        "published_at": part["_published_at"].to_numpy()
                        if "_published_at" in part
                        else None,
                        "sub_reason": part["exception_reason"].to_numpy(),
                        "carrier_id": part["carrier_id"].to_numpy(),
                    }
                )
            )
        if not hits:
            return pd.DataFrame()
        found = pd.concat(hits, ignore_index=True)
        legs = self._legs(con, found["tracking_ref"].unique().tolist())
        found = found.merge(
            legs, on="tracking_ref", how="inner"
        )  # events of unknown legs: no order
        found["alert_id"] = [
            alert_id(r, t) for r, t in zip(found["rule"], found["tracking_ref"], strict=True)
        ]
        found["mode"] = found["leg_mode"]
        return found

    def _late_alerts(self, etas: pd.DataFrame | None, events: pd.DataFrame | None) -> pd.DataFrame:
        rules = self.rules.of_kind("predicted_late")
        if etas is None or etas.empty or not rules:
            return pd.DataFrame()
        rule = rules[0]
        frame = etas.dropna(subset=["predicted_delivery_at"]).copy()
        if frame.empty:
            return pd.DataFrame()
        frame["trigger_event_id"] = None
        frame["published_at"] = pd.NaT
        if events is not None and not events.empty:
            last = events.sort_values("event_ts").drop_duplicates("tracking_ref", keep="last")
            last = last.set_index("tracking_ref")
            frame["trigger_event_id"] = frame["tracking_ref"].map(last["event_id"])
            frame["published_at"] = frame["tracking_ref"].map(last["_published_at"])
            frame["event_at"] = frame["tracking_ref"].map(last["event_ts"])
        frame["rule"] = rule.id
        frame["eta_at"] = frame["predicted_delivery_at"]
        frame["alert_id"] = [alert_id(rule.id, s) for s in frame["shipment_id"]]
        return frame[
            [
                "rule",
                "alert_id",
                "shipment_id",
                "tracking_ref",
                "trigger_event_id",
                "event_at",
                "published_at",
                "eta_at",
            ]
        ]

    def _sweep_alerts(self, con, clock: datetime) -> pd.DataFrame:
        stuck = self.rules.of_kind("stuck")
        missed = self.rules.of_kind("milestone_missed")
        if not stuck and not missed:
            return pd.DataFrame()
        lookback = clock - timedelta(hours=self.rules.sweep_lookback_hours)
        con.execute(
            """
            create or replace temp table _sweep as
            with ev as (
                select tracking_ref, max(event_at) as last_at,
                       arg_max(event_code, event_at) as last_code,
                       arg_max(event_id, event_at) as last_event_id
                from staging.stg_carriers__carrier_events
                where is_actual and event_at <= ? and event_at >= ? - interval 30 day
                group by 1
            ),
            legs as (
                select l.shipment_id, l.leg_no, l.tracking_ref, l.mode, l.carrier_id,
                       l.planned_departure_at, ev.last_at, ev.last_code, ev.last_event_id
                from staging.stg_tms__shipment_legs as l
                left join ev on ev.tracking_ref = l.tracking_ref
                where l.planned_departure_at between ? - interval 30 day and ?
            ),
            shipments as (
                select shipment_id,
                       bool_or(last_code in ('DELIVERED', 'RETURNED', 'AVAILABLE_FOR_PICKUP')) as done,
                       max(case when last_at is not null then leg_no end) as active_leg
                from legs group by 1
            )
            select legs.*, shipments.active_leg
            from legs join shipments using (shipment_id)
            where not shipments.done
            """,
            [clock, lookback, lookback, clock],
        )
        out = []
        for rule in stuck:
            hours = rule.params["hours"]
            frame = con.execute(
                "select * from _sweep where leg_no = active_leg and last_at >= ?",
                [lookback],
            ).df()
            if frame.empty:
                continue
            limit = frame["mode"].map(hours).fillna(max(hours.values()))
            age_h = (
                pd.Timestamp(clock) - pd.to_datetime(frame["last_at"], utc=True)
            ).dt.total_seconds() / 3600
            frame = frame.loc[age_h >= limit]
            out.append(
                pd.DataFrame(
                    {
                        "rule": rule.id,
                        "tracking_ref": frame["tracking_ref"].to_numpy(),
                        "shipment_id": frame["shipment_id"].to_numpy(),
                        "trigger_event_id": frame["last_event_id"].to_numpy(),
                        "event_at": frame["last_at"].to_numpy(),
                        "mode": frame["mode"].to_numpy(),
                        "carrier_id": frame["carrier_id"].to_numpy(),
                        "alert_id": [
                            alert_id(rule.id, t, e)
                            for t, e in zip(
                                frame["tracking_ref"], frame["last_event_id"], strict=True
                            )
                        ],
                    }
                )
            )
        for rule in missed:
            grace = timedelta(hours=rule.params["grace_hours"])
            frame = con.execute(
                "select * from _sweep where last_at is null and planned_departure_at <= ? "
                "and planned_departure_at >= ? and (active_leg is null or leg_no > active_leg)",
                [clock - grace, lookback],
            ).df()
            # only the first leg without scans: later ones are waiting on it
            frame = frame.sort_values("leg_no").drop_duplicates("shipment_id")
            out.append(
                pd.DataFrame(
                    {
                        "rule": rule.id,
                        "tracking_ref": frame["tracking_ref"].to_numpy(),
                        "shipment_id": frame["shipment_id"].to_numpy(),
                        "trigger_event_id": None,
                        "event_at": frame["planned_departure_at"].to_numpy(),
                        "mode": frame["mode"].to_numpy(),
                        "carrier_id": frame["carrier_id"].to_numpy(),
                        "sub_reason": rule.params.get("milestone", "departure"),
                        "alert_id": [
                            alert_id(rule.id, t, "departure") for t in frame["tracking_ref"]
                        ],
                    }
                )
            )
        con.execute("drop table if exists _sweep")
        out = [o for o in out if not o.empty]
        return pd.concat(out, ignore_index=True) if out else pd.DataFrame()

    # ------------------------------------------------------------------ assemble

    def _severity(self, rule: Rule, service_level: str | None) -> str:
        return rule.severity_by_service.get(service_level or "", rule.severity)

    def detect(
        self,
        con: duckdb.DuckDBPyConnection,
        events: pd.DataFrame | None,
        etas: pd.DataFrame | None = None,
        batch_id: str | None = None,
        sweep: bool | None = None,
    ) -> pd.DataFrame:
        """Alerts raised by this batch (not yet stored), one row per new episode candidate."""
        clock = self.clock()
        parts = [self._event_alerts(con, events), self._late_alerts(etas, events)]
        due = (
            sweep
            if sweep is not None
            else time.monotonic() - self._last_sweep >= self.rules.sweep_every_s
        )
        if due:
            parts.append(self._sweep_alerts(con, clock))
            self._last_sweep = time.monotonic()
        parts = [p for p in parts if not p.empty]
        if not parts:
            return pd.DataFrame(columns=list(ALERT_COLUMNS))
        found = pd.concat(parts, ignore_index=True).drop_duplicates("alert_id")
        # already stored episodes are not re-priced
        con.register("_candidates", found[["alert_id"]])
        try:
            known = {
                r[0]
                for r in con.execute(
                    f"select c.alert_id from _candidates c join {ALERTS_TABLE} a using (alert_id)"
                ).fetchall()
            }
        finally:
            con.unregister("_candidates")
        found = found[~found["alert_id"].isin(known)]
        if found.empty:
            return pd.DataFrame(columns=list(ALERT_COLUMNS))
        ctx = con.execute(CONTEXT_SQL, [found["shipment_id"].unique().tolist()]).df()
        found = found.merge(ctx, on="shipment_id", how="inner", suffixes=("", "_ctx"))
        if found.empty:
            return pd.DataFrame(columns=list(ALERT_COLUMNS))
        by_id = {r.id: r for r in self.rules.rules}
        found["reason"] = [by_id[r].reason for r in found["rule"]]
        found["severity"] = [
            self._severity(by_id[r], s)
            for r, s in zip(found["rule"], found["service_level"], strict=True)
        ]
        found["sla_minutes"] = (
            found["severity"].map(self.rules.severity_sla_minutes).astype("int64")
        )
        if "eta_at" not in found:
            found["eta_at"] = pd.NaT
        eta = pd.to_datetime(found["eta_at"], utc=True)
        if etas is not None and not etas.empty:
            known_eta = etas.drop_duplicates("shipment_id", keep="last").set_index("shipment_id")
            eta = eta.fillna(
                pd.to_datetime(
                    found["shipment_id"].map(known_eta["predicted_delivery_at"]), utc=True
                )
            )
        eta = eta.fillna(pd.to_datetime(found["planned_delivery_at"], utc=True))
        found["eta_at"] = eta
        end = _promise_end(found["promised_delivery_date"])
        found["hours_late"] = ((eta - end).dt.total_seconds() / 3600).round(1)
        found["promise_at_risk"] = (found["hours_late"].fillna(0) > 0) | found["rule"].eq(
            "lost_or_damaged"
        )
        late_rules = {
            r.id: r.params["min_hours_late"] for r in self.rules.of_kind("predicted_late")
        }
        too_early = found["rule"].isin(late_rules) & ~(
            found["hours_late"] >= found["rule"].map(late_rules).fillna(0)
        )
        found = found.loc[~too_early].copy()
        if found.empty:
            return pd.DataFrame(columns=list(ALERT_COLUMNS))
        found["clock_at"] = clock
        found["detected_at"] = datetime.now(UTC)
        found["batch_id"] = batch_id
        for col in (
            "sub_reason",
            "trigger_event_id",
            "published_at",
            "event_at",
            "carrier_id",
            "mode",
        ):
            if col not in found:
                found[col] = None
        found = self._with_alternatives(con, found, clock)
        return found[list(ALERT_COLUMNS)].reset_index(drop=True)

    def _with_alternatives(self, con, found: pd.DataFrame, clock: datetime) -> pd.DataFrame:
        found = found.copy()
        if self.network is None:
            found["alternatives"] = "[]"
            found["recommended_option"] = None
            found["recommended_action"] = "no alternatives: the lake has no warehouse network yet"
            return found
        lines = con.execute(
            "select shipment_id, sku_id, quantity from staging.stg_tms__shipment_lines "
            "where shipment_id in (select unnest(?))",
            [found["shipment_id"].unique().tolist()],
        ).df()
        context = found.assign(order_value_eur=found["order_value_eur"].astype(float))
        priced = price_alternatives(
            context,
            lines,
            self._stock_now(con),
            self.network,
            self.dispatch,
            self.rules.alternatives,
            clock,
        )
        return found.merge(priced, on="alert_id", how="left")

    @staticmethod
    def store(con: duckdb.DuckDBPyConnection, alerts: pd.DataFrame) -> pd.DataFrame:
        """Insert the alerts whose id is not stored yet (inside the caller's transaction);
        returns the ones inserted."""
        if alerts.empty:
            return alerts
        cols = ", ".join(ALERT_COLUMNS)
        casts = ", ".join(
            f"cast({c} as {t.replace(' not null', '')})" for c, t in ALERT_COLUMNS.items()
        )
        con.register("_alerts", alerts)
        try:
            new_ids = {
                r[0]
                for r in con.execute(
                    f"select alert_id from _alerts where alert_id not in (select alert_id from {ALERTS_TABLE})"
                ).fetchall()
            }
            con.execute(
                f"insert into {ALERTS_TABLE} ({cols}) select {casts} from _alerts "
                f"where alert_id not in (select alert_id from {ALERTS_TABLE})"
            )
        finally:
            con.unregister("_alerts")
        return alerts[alerts["alert_id"].isin(new_ids)].reset_index(drop=True)
