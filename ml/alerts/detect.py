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

**The clock** (``clock: watermark``) is the stream's own notion of "now", so a replay of a past
day runs its time rules on the replayed day's time. It is guarded (:class:`ml.alerts.rules.
ClockGuard`): only actual events move it (a DCSA estimate is a carrier's forecast of a future
arrival: before issue 18 these moved the clock days ahead, which is why the demo's replay saw
every open leg as stuck); an event more than the margin ahead of its receipt
(``_published_at``) or of the wall clock never moves it; and it moves to the ``corroborate``-th
latest time of distinct legs, so a lone future-dated event cannot move it at all.
``watermark_unbounded`` keeps the old behaviour for the before/after measurement only.

**The storm guard** (:class:`ml.alerts.rules.StormPolicy`, per-rule ``budget_per_hour``): a rule
raising more alerts within the window than its budget, or flagging more than a share of the
open legs in one sweep, is a fault, not the world. Its alerts are still stored, flagged
``suppressed`` (not priced, no customer message), and one operational alert per storm is
stored in ``ops.operational_alerts``.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import deque
from datetime import UTC, datetime, timedelta

import duckdb
import pandas as pd

from ml.alerts.alternatives import latest_stock, price_alternatives
from ml.alerts.ops import ensure_ops_alerts_table, raise_operational_alert
from ml.alerts.rules import Rule, RuleSet, RulesReloader
from ml.dispatch.config import DispatchPolicy, load_policy
from ml.dispatch.network import Network, NetworkError
from ml.dispatch.store import DispatchDataError, load_network

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
    "suppressed": "boolean",
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
    # lakes from before the storm guard: the flag is added (old alerts were all sent)
    con.execute(f"alter table {ALERTS_TABLE} add column if not exists suppressed boolean")
    ensure_ops_alerts_table(con)


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
        reloader: RulesReloader | None = None,
    ) -> None:
        # given rules are fixed; otherwise rules.yaml is watched (a bad edit keeps these)
        self.reloader = None if rules is not None else (reloader or RulesReloader())
        self.rules = rules or self.reloader.current
        self.dispatch = dispatch or load_policy()
        self.stock_refresh_s = stock_refresh_s
        ensure_alerts_table(con)
        self.network: Network | None = None
        try:
            self.network = load_network(con, self.dispatch)
        except (
            duckdb.Error,
            NetworkError,
            DispatchDataError,
        ) as exc:  # no marts yet: alerts without alternatives
            log.warning("alternatives disabled until the lake has warehouses: %s", exc)
        self._stock: pd.DataFrame | None = None
        self._stock_at = 0.0
        self._last_sweep = 0.0
        self._last_sweep_clock: datetime | None = None
        #: legs (tracking_ref -> time) ahead of the watermark, waiting for corroboration
        self._frontier: dict[str, pd.Timestamp] = {}
        #: events the clock refused in the current batch (flushed as an operational alert)
        self._refused: pd.DataFrame | None = None
        self.refused_total = 0
        self.open_legs: int | None = None
        self.watermark: datetime | None = self._restore_watermark(con)
        #: per rule, the stream-clock times of its recent alerts (the storm window)
        self._recent: dict[str, deque] = {}
        self._storming: dict[str, datetime] = {}
        self._restore_recent(con)

    # ------------------------------------------------------------------ clock and context

    def _margin(self) -> pd.Timedelta:
        return pd.Timedelta(minutes=self.rules.clock_guard.margin_minutes)

    def _restore_watermark(self, con) -> datetime | None:
        """The clock survives restarts: recomputed from the stored events, under the same guard."""
        try:
            if self.rules.clock == "watermark_unbounded":
                row = con.execute("select max(event_ts) from raw.carrier_events_stream").fetchone()
                return row[0] if row else None
            margin = int(self.rules.clock_guard.margin_minutes * 60)
            row = con.execute(
                f"""
                select event_ts from (
                    select tracking_ref, max(event_ts) as event_ts
                    from raw.carrier_events_stream
                    where event_classifier = 'ACT'
                      and (_published_at is null
                           or event_ts <= _published_at + to_seconds({margin}))
                      and event_ts <= now() + to_seconds({margin})
                    group by 1
                ) order by event_ts desc limit 1 offset ?
                """,
                [self.rules.clock_guard.corroborate - 1],
            ).fetchone()
        except duckdb.Error:  # no stream table yet
            return None
        return row[0] if row else None

    def _restore_recent(self, con) -> None:
        if self.watermark is None:
            return
        since = self.clock() - timedelta(minutes=self.rules.storm.window_minutes)
        try:
            rows = con.execute(
                f"select rule, clock_at from {ALERTS_TABLE} where clock_at >= ? order by clock_at",
                [since],
            ).fetchall()
        except duckdb.Error:
            return
        for rule, at in rows:
            self._recent.setdefault(rule, deque()).append(pd.Timestamp(at))

    def advance(self, events: pd.DataFrame | datetime | None) -> None:
        """Move the clock with a batch's landed events (``event_ts``, ``event_classifier``,
        ``tracking_ref``, ``_published_at``); a bare time counts as one actual event."""
        if events is None:
            return
        if not isinstance(events, pd.DataFrame):
            events = pd.DataFrame({"event_ts": [events]})
        if events.empty or "event_ts" not in events:
            return
        ts = pd.to_datetime(events["event_ts"], utc=True)
        if self.rules.clock == "watermark_unbounded":
            latest = ts.max()
            if pd.notna(latest) and (self.watermark is None or latest > self.watermark):
                self.watermark = latest.to_pydatetime()
            return
        if self.rules.clock == "wall":
            return
        margin = self._margin()
        actual = ts.notna()
        if "event_classifier" in events:
            actual &= events["event_classifier"].fillna("ACT").eq("ACT").to_numpy()
        ahead = ts > pd.Timestamp.now(tz="UTC") + margin
        if "_published_at" in events:
            received = pd.to_datetime(events["_published_at"], utc=True)
            ahead |= received.notna() & (ts > received + margin)
        refused = actual & ahead
        if refused.any():
            self.refused_total += int(refused.sum())
            cols = [c for c in ("carrier_id", "tracking_ref", "event_ts") if c in events]
            part = events.loc[refused.to_numpy(), cols]
            self._refused = part if self._refused is None else pd.concat([self._refused, part])
        keep = (actual & ~refused).to_numpy()
        refs = (
            events["tracking_ref"].fillna("").astype(str)
            if "tracking_ref" in events
            else pd.Series([f"#{i}" for i in range(len(events))], index=events.index)
        )
        mark = pd.Timestamp(self.watermark) if self.watermark is not None else None
        for ref, t in zip(refs[keep], ts[keep], strict=True):
            if (mark is None or t > mark) and (
                ref not in self._frontier or t > self._frontier[ref]
            ):
                self._frontier[ref] = t
        k = self.rules.clock_guard.corroborate
        if len(self._frontier) >= k:
            latest = sorted(self._frontier.values(), reverse=True)[k - 1]
            self.watermark = latest.to_pydatetime()
            self._frontier = {r: t for r, t in self._frontier.items() if t > latest}

    def has_clock(self) -> bool:
        """Whether the time rules can run: a watermark clock needs a watermark first."""
        return self.rules.clock == "wall" or self.watermark is not None

    def clock(self) -> datetime:
        if self.rules.clock == "wall" or self.watermark is None:
            return datetime.now(UTC)
        mark = pd.Timestamp(self.watermark).tz_convert(UTC)
        if self.rules.clock == "watermark":
            mark = min(mark, pd.Timestamp.now(tz="UTC") + self._margin())
        return mark.to_pydatetime()

    def reload(self, con: duckdb.DuckDBPyConnection) -> str | None:
        """Pick up an edit of rules.yaml; a bad one keeps the rules in use and raises one
        operational alert. Returns the error of a refused edit."""
        if self.reloader is None:
            return None
        rules, error = self.reloader.poll()
        if error is not None:
            raise_operational_alert(
                con,
                "rules_reload_failed",
                f"{error} -- the last good rules stay in use",
                (str(self.reloader.path), self.reloader._stamp),
                subject=self.reloader.path.name,
            )
            return error
        if rules is not self.rules:
            log.info("exception rules reloaded from %s", self.reloader.path)
            self.rules = rules
        return None

    def _flush_refused(self, con) -> None:
        if self._refused is None or self._refused.empty:
            return
        frame, self._refused = self._refused, None
        day = datetime.now(UTC).date().isoformat()
        for carrier, part in frame.groupby(frame.get("carrier_id", pd.Series("?", frame.index))):
            raise_operational_alert(
                con,
                "clock_refused_events",
                f"{len(part)} event(s) of {carrier} more than "
                f"{self.rules.clock_guard.margin_minutes:g} min ahead of their receipt or of the "
                f"wall clock did not move the alert clock (latest {part['event_ts'].max()}); "
                "they are stored, their leg's alerts still run",
                (carrier, day),
                subject=str(carrier),
                affected=len(part),
            )

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
        self.open_legs = int(
            con.execute("select count(distinct tracking_ref) from _sweep").fetchone()[0]
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
        self._flush_refused(con)
        parts = [self._event_alerts(con, events), self._late_alerts(etas, events)]
        due = sweep
        if due is None:
            due = time.monotonic() - self._last_sweep >= self.rules.sweep_every_s
            step = self.rules.sweep_every_clock_minutes
            if step:
                last = self._last_sweep_clock
                due = due or last is None or clock - last >= timedelta(minutes=step)
        swept = False
        if due and self.has_clock():
            parts.append(self._sweep_alerts(con, clock))
            self._last_sweep = time.monotonic()
            self._last_sweep_clock = clock
            swept = True
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
        found["suppressed"] = self._storm(con, found, clock, swept)
        sent = found.loc[~found["suppressed"]]
        held = found.loc[found["suppressed"]].copy()
        parts = [self._with_alternatives(con, sent, clock)] if not sent.empty else []
        if not held.empty:  # a storm is not priced: nobody acts on it alert by alert
            held["alternatives"] = "[]"
            held["recommended_option"] = None
            held["recommended_action"] = "suppressed in an alert storm: see ops.operational_alerts"
            parts.append(held)
        found = pd.concat(parts, ignore_index=True)
        return found[list(ALERT_COLUMNS)].reset_index(drop=True)

    # ------------------------------------------------------------------ storm guard

    def _storm(self, con, found: pd.DataFrame, clock: datetime, swept: bool) -> pd.Series:
        """Which of the new alerts are suppressed: those of a rule in a storm."""
        policy = self.rules.storm
        window = pd.Timedelta(minutes=policy.window_minutes)
        now = pd.Timestamp(clock)
        by_id = {r.id: r for r in self.rules.rules}
        suppressed = pd.Series(False, index=found.index)
        for rule_id in found["rule"].unique():
            rule = by_id.get(rule_id)
            mask = found["rule"].eq(rule_id)
            n = int(mask.sum())
            recent = self._recent.setdefault(rule_id, deque())
            while recent and recent[0] < now - window:
                recent.popleft()
            limit = policy.max_alerts
            if rule is not None and rule.budget_per_hour:
                limit = min(limit, rule.budget_per_hour * policy.window_minutes / 60)
            in_window = len(recent) + n
            reasons = []
            if in_window > limit:
                reasons.append(
                    f"{in_window} alerts within {policy.window_minutes:g} min of stream time "
                    f"(budget {limit:g})"
                )
            sweep_rule = rule is not None and rule.kind in ("stuck", "milestone_missed")
            open_legs = self.open_legs or 0
            if swept and sweep_rule and open_legs >= policy.min_open_legs:
                share = n / open_legs
                if share > policy.max_share_of_open_legs:
                    reasons.append(
                        f"{share:.0%} of the {open_legs} open legs in one sweep "
                        f"(limit {policy.max_share_of_open_legs:.0%})"
                    )
            recent.extend([now] * n)
            if not reasons:
                self._storming.pop(rule_id, None)
                continue
            start = self._storming.setdefault(rule_id, clock)
            suppressed |= mask
            raise_operational_alert(
                con,
                "alert_storm",
                f"rule {rule_id}: {'; '.join(reasons)}. Its customer messages are suppressed "
                "until the rate is back under budget; the alerts are stored flagged suppressed. "
                "Check the stream clock, the carrier feeds and rules.yaml.",
                (rule_id, pd.Timestamp(start).isoformat()),
                subject=rule_id,
                affected=n,
                clock_at=clock,
            )
        return suppressed

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
