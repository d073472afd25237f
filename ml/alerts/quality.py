"""Alert quality against the simulated world's truth: precision and recall per rule.

The simulator knows what really happened to every shipment (``truth/shipments_truth.parquet``:
late, lost, damaged, address issue, failed attempts, customs hold; ``truth/legs_truth.parquet``:
each leg's actual departure and arrival, its delay, whether it was lost). The replay
(``pipelines/stream/quality.py``) feeds the world's carrier events through the stream's own
lander and detector; this module scores what the detector stored against that truth.

Each rule makes a claim about a shipment; the claim is true when the truth says so:

=====================  ====================================================================
rule                   true when the shipment ...
=====================  ====================================================================
lost_or_damaged        was lost or damaged
address_or_refused     had an address issue
carrier_delay          was really disrupted: a leg delayed, a leg lost, or delivered late
delivery_failed        had a failed delivery attempt
customs_hold           was held in customs
predicted_late         missed its promised day (late or lost)
stuck                  was really disrupted (as carrier_delay)
departure_missed       had a leg leave more than the grace later than planned (or never)
=====================  ====================================================================

Precision: the share of a rule's alerted shipments whose claim is true. Recall: the share of
the shipments whose claim is true that the rule alerted, over the shipments the replay saw
(at least one event replayed) whose outcome is settled before the world ends (delivered, or
lost early enough for the loss to be reported); the truth knows the future, the feed does not.

Customer messages are compared with the truly affected orders: orders with a shipment that
was late, lost, damaged, had an address issue, a failed attempt or a customs hold.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd

#: what each rule claims, as a truth column of :func:`shipment_truth`
CLAIMS = {
    "lost_or_damaged": "lost_or_damaged",
    "address_or_refused": "address_issue",
    "carrier_delay": "disrupted",
    "delivery_failed": "failed_attempt",
    "customs_hold": "customs_hold",
    "predicted_late": "late",
    "stuck": "disrupted",
    "departure_missed": "departure_late",
}
#: the rules that fire on a carrier's event (the goal: precision and recall >= 0.9)
CARRIER_EVENT_RULES = (
    "lost_or_damaged",
    "address_or_refused",
    "carrier_delay",
    "delivery_failed",
    "customs_hold",
)
AFFECTED = ("late", "lost_or_damaged", "address_issue", "failed_attempt", "customs_hold")


@dataclass(frozen=True)
class Truth:
    shipments: pd.DataFrame  # one row per shipment, the claim columns and `settled`
    world_end: datetime


def load_truth(
    landing_dir: Path,
    legs_plan: pd.DataFrame,
    world_end: datetime,
    departure_grace_hours: float = 8.0,
) -> Truth:
    """The truth per shipment. ``legs_plan``: ``tracking_ref, shipment_id,
    planned_departure_at`` (the TMS plan as the lake holds it)."""
    truth_dir = Path(landing_dir) / "truth"
    ships = pd.read_parquet(truth_dir / "shipments_truth.parquet")
    legs = pd.read_parquet(truth_dir / "legs_truth.parquet")
    return Truth(
        shipment_truth(ships, legs, legs_plan, world_end, departure_grace_hours), world_end
    )


def shipment_truth(
    ships: pd.DataFrame,
    legs: pd.DataFrame,
    legs_plan: pd.DataFrame,
    world_end: datetime,
    departure_grace_hours: float = 8.0,
) -> pd.DataFrame:
    end = pd.Timestamp(world_end)
    end = end.tz_localize("UTC") if end.tzinfo is None else end.tz_convert("UTC")
    kinds = ships["exception_kinds"].apply(lambda k: set(k) if k is not None else set())
    out = pd.DataFrame(
        {
            "shipment_id": ships["shipment_id"],
            "order_id": ships["order_id"],
            "in_feed": ships["in_feed"].astype(bool),
            "lost": kinds.apply(lambda k: "lost" in k),
            "damaged": kinds.apply(lambda k: "damaged" in k),
            "address_issue": kinds.apply(lambda k: "address_issue" in k),
            "customs_hold": kinds.apply(lambda k: "customs_hold" in k),
            "failed_attempt": ships["failed_attempts"].fillna(0).astype(int) > 0,
        }
    )
    out["lost_or_damaged"] = out["lost"] | out["damaged"]
    out["late"] = ships["was_late"].astype(bool) | out["lost"]
    plan = legs_plan.merge(legs, on="tracking_ref", how="inner")
    planned = pd.to_datetime(plan["planned_departure_at"], utc=True)
    actual = pd.to_datetime(plan["actual_departure_at"], utc=True)
    plan["dep_late"] = actual.isna() | (
        actual - planned > pd.Timedelta(hours=departure_grace_hours)
    )
    plan["delayed"] = (plan["delay_hours"].fillna(0) > 0) | plan["lost"].astype(bool)
    per_ship = plan.groupby("shipment_id").agg(
        departure_late=("dep_late", "any"),
        leg_delayed=("delayed", "any"),
        lost_departed=("actual_departure_at", "min"),
    )
    out = out.merge(per_ship, on="shipment_id", how="left")
    out["departure_late"] = out["departure_late"].astype("boolean").fillna(False).astype(bool)
    out["disrupted"] = out["leg_delayed"].astype("boolean").fillna(False).astype(bool) | out["late"]
    delivered = pd.to_datetime(ships["delivered_at"], utc=True)
    departed = pd.to_datetime(out["lost_departed"], utc=True)
    out["settled"] = (delivered <= end - pd.Timedelta(hours=12)).fillna(False) | (
        out["lost"] & (departed <= end - pd.Timedelta(days=2)).fillna(False)
    )
    return out.drop(columns=["leg_delayed", "lost_departed"])


def _ratio(num: int, den: int) -> float | None:
    return round(num / den, 3) if den else None


def score(
    alerts: pd.DataFrame,
    messages: pd.DataFrame,
    truth: Truth,
    replayed_shipments: set[str],
    rules: list[str] | None = None,
) -> dict:
    """Precision and recall per rule, and customer messages against truly affected orders.

    ``alerts``: the stored alerts (``rule, shipment_id, order_id, suppressed``);
    ``messages``: the outbox (``message_id, order_id``)."""
    t = truth.shipments
    scope = t[t["shipment_id"].isin(replayed_shipments)]
    settled = scope[scope["settled"]]
    rules = rules or sorted(set(alerts["rule"]) | set(CLAIMS))
    per_rule = {}
    for rule in rules:
        claim = CLAIMS.get(rule)
        mine = alerts[alerts["rule"] == rule]
        alerted = set(mine["shipment_id"])
        row: dict = {
            "alerts": len(mine),
            "suppressed": int(mine["suppressed"].fillna(False).astype(bool).sum())
            if "suppressed" in mine
            else 0,
            "shipments": len(alerted),
            "claim": claim,
        }
        if claim is None:
            per_rule[rule] = row
            continue
        true_ids = set(t.loc[t[claim], "shipment_id"])
        positives = set(settled.loc[settled[claim], "shipment_id"])
        tp = len(alerted & true_ids)
        found = len(alerted & positives)
        row.update(
            {
                "true_positives": tp,
                "false_positives": len(alerted) - tp,
                "positives": len(positives),
                "found": found,
                "precision": _ratio(tp, len(alerted)),
                "recall": _ratio(found, len(positives)),
            }
        )
        per_rule[rule] = row
    affected_mask = scope[list(AFFECTED)].any(axis=1)
    affected = set(scope.loc[affected_mask, "order_id"])
    messaged = set(messages["order_id"].dropna())
    n_messages = len(messages)
    return {
        "rules": per_rule,
        "messages": {
            "messages": n_messages,
            "orders_messaged": len(messaged),
            "orders_truly_affected": len(affected),
            "orders_messaged_affected": len(messaged & affected),
            "orders_messaged_unaffected": len(messaged - affected),
            "messages_per_affected_order": _ratio(n_messages, len(affected)),
            "goal_at_most": 1.1,
        },
        "scope": {
            "shipments_replayed": len(scope),
            "shipments_settled": len(settled),
            "world_end": truth.world_end.isoformat(),
        },
    }


def goals(report: dict) -> dict:
    """Which goals of issue 18 a report meets: precision and recall >= 0.9 for every carrier-
    event rule, messages <= 1.1 x the truly affected orders."""
    out = {}
    for rule in CARRIER_EVENT_RULES:
        r = report["rules"].get(rule, {})
        p, rc = r.get("precision"), r.get("recall")
        out[rule] = p is not None and rc is not None and p >= 0.9 and rc >= 0.9
    ratio = report["messages"]["messages_per_affected_order"]
    out["messages"] = ratio is not None and ratio <= 1.1
    return out


def world_end_of(last_day: datetime | pd.Timestamp) -> datetime:
    """The world ends at the end of its last landed day."""
    return (pd.Timestamp(last_day) + timedelta(days=1)).to_pydatetime()
