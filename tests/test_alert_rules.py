"""The exception rules, rule by rule, and the guards of issue 18: the alert clock, the storm
guard and safe reloads of rules and templates.

Fast tests run on an empty lake (``lake_writer``): validation, the clock guard, the storm guard,
reloads while a live hook runs. The rule-by-rule tests need a world (legs, orders, customers,
warehouses for the priced alternatives): a copy of the run's shared lake, and they are
marked slow.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import yaml

from ml.alerts.detect import ALERT_COLUMNS, Detector
from ml.alerts.messages import MESSAGES_PATH, TemplateError, TemplateReloader
from ml.alerts.ops import OPS_ALERTS_TABLE
from ml.alerts.rules import RULES_PATH, RulesError, RulesReloader, load_rules, parse_rules

BASELINE = RULES_PATH.with_name("baseline_rules.yaml")
NOW = datetime.now(UTC).replace(microsecond=0)


def _events(rows: list[tuple], published_at=None) -> pd.DataFrame:
    """Landed events as the lander hands them to the hook:
    (tracking_ref, event_ts, classifier[, event_code, exception_reason])."""
    frame = pd.DataFrame(
        [
            {
                "tracking_ref": r[0],
                "event_ts": pd.Timestamp(r[1]),
                "event_classifier": r[2] if len(r) > 2 else "ACT",
                "event_code": r[3] if len(r) > 3 else "IN_TRANSIT",
                "exception_reason": r[4] if len(r) > 4 else None,
                "event_id": f"ev-{i}-{r[0]}",
                "carrier_id": "swiftparcel",
            }
            for i, r in enumerate(rows)
        ]
    )
    frame["_published_at"] = pd.Timestamp(published_at or NOW)
    return frame


def _ops(con, kind: str | None = None) -> pd.DataFrame:
    frame = con.execute(f"select * from {OPS_ALERTS_TABLE}").df()
    return frame if kind is None else frame[frame["kind"] == kind]


# ------------------------------------------------------------------------------ validation


def test_the_shipped_rules_and_the_baseline_are_valid():
    after, before = load_rules(), load_rules(BASELINE)
    assert after.clock == "watermark" and before.clock == "watermark_unbounded"
    assert {r.id for r in after.rules} == {r.id for r in before.rules}
    assert after.clock_guard.margin_minutes == 60 and after.clock_guard.corroborate >= 2
    assert 0 < after.storm.max_share_of_open_legs <= 1


def _edit(path: Path, change) -> dict:
    raw = yaml.safe_load(path.read_text())
    change(raw)
    return raw


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda r: r["rules"][0].update(kind="sometimes"), "kind"),
        (lambda r: r["rules"][0].update(severty="high"), "severty"),
        (lambda r: r["rules"][0].update(budget_per_hour=-5), "budget_per_hour"),
        (lambda r: r["rules"][0]["when"].update(event_code="EXCEPTION"), "event_code"),
        (lambda r: r["rules"][6]["hours"].pop("sea"), "sea"),
        (lambda r: r.update(clock="sundial"), "clock"),
        (lambda r: r.update(storm={"max_share_of_open_legs": 20}), "max_share_of_open_legs"),
        (lambda r: r.update(clock_guard={"margin_minutes": "an hour"}), "margin_minutes"),
        (lambda r: r.update(sweep_evry_s=30), "sweep_evry_s"),
        (lambda r: r.update(rules=[]), "rules"),
        (lambda r: r["rules"][5].update(severity_by_service=["high"]), "severity_by_service"),
    ],
)
def test_a_bad_edit_is_refused_naming_its_place(change, named: str):
    with pytest.raises(RulesError, match=named):
        parse_rules(_edit(RULES_PATH, change))


# ------------------------------------------------------------------------------ the clock


@pytest.fixture
def detector(lake_writer) -> Detector:
    return Detector(lake_writer, rules=load_rules())


def test_the_clock_follows_corroborated_actual_events_of_a_replayed_day(detector):
    day = pd.Timestamp("2026-08-20 10:00", tz="UTC")  # a replay: the world lies in the past
    detector.advance(_events([("A", day), ("B", day + timedelta(minutes=5))]))
    assert detector.watermark is None and not detector.has_clock()  # two legs are not enough
    detector.advance(_events([("C", day + timedelta(minutes=9))]))
    assert pd.Timestamp(detector.watermark) == day
    detector.advance(_events([(r, day + timedelta(hours=2)) for r in "DEF"]))
    assert pd.Timestamp(detector.clock()) == day + timedelta(hours=2)


def test_one_future_dated_event_does_not_move_the_clock(detector):
    day = pd.Timestamp("2026-08-20 10:00", tz="UTC")
    detector.advance(_events([(r, day) for r in "ABC"]))
    # ten days ahead of the world, but in the past of the wall clock: only corroboration holds it
    detector.advance(_events([("X", day + timedelta(days=10))]))
    assert pd.Timestamp(detector.clock()) == day
    # a carrier's estimate of an arrival days ahead is a forecast, not the time now
    detector.advance(_events([(r, day + timedelta(days=9), "EST") for r in "PQRS"]))
    assert pd.Timestamp(detector.clock()) == day


def test_events_ahead_of_their_receipt_or_the_wall_never_move_the_clock(detector, lake_writer):
    ahead = pd.Timestamp(NOW) + timedelta(hours=3)
    detector.advance(_events([(r, ahead) for r in "ABCD"]))  # received NOW, dated 3 h later
    assert detector.watermark is None and detector.refused_total == 4
    detector._flush_refused(lake_writer)
    refused = _ops(lake_writer, "clock_refused_events")
    assert len(refused) == 1 and refused["affected"].iloc[0] == 4
    # no receipt time at all: the wall clock bounds it
    future = _events([(r, ahead + timedelta(days=5)) for r in "EFG"]).drop(columns="_published_at")
    detector.advance(future)
    assert detector.watermark is None
    assert detector.clock() <= datetime.now(UTC) + timedelta(minutes=61)


def test_the_baseline_clock_is_moved_by_one_future_event(lake_writer):
    before = Detector(lake_writer, rules=load_rules(BASELINE))
    day = pd.Timestamp("2026-08-20 10:00", tz="UTC")
    before.advance(_events([(r, day) for r in "ABC"] + [("X", day + timedelta(days=10))]))
    assert pd.Timestamp(before.clock()) == day + timedelta(days=10)  # the fault of issue 18


# ------------------------------------------------------------------------------ the storm guard


def _found(rule: str, n: int, start: int = 0) -> pd.DataFrame:
    return pd.DataFrame({"rule": [rule] * n, "alert_id": [f"{rule}-{start + i}" for i in range(n)]})


def test_a_rule_over_its_budget_is_suppressed_with_one_operational_alert(detector, lake_writer):
    clock = datetime(2026, 8, 20, 10, tzinfo=UTC)
    limit = detector.rules.storm.max_alerts
    calm = detector._storm(lake_writer, _found("carrier_delay", 5), clock, swept=False)
    assert not calm.any()
    flood = detector._storm(lake_writer, _found("stuck", limit + 1), clock, swept=False)
    assert flood.all()
    more = detector._storm(lake_writer, _found("stuck", 50, limit + 1), clock, swept=False)
    assert more.all()  # the storm goes on
    other = detector._storm(lake_writer, _found("carrier_delay", 5, 5), clock, swept=False)
    assert not other.any()  # only the storming rule is held
    storms = _ops(lake_writer, "alert_storm")
    assert len(storms) == 1 and storms["subject"].iloc[0] == "stuck"
    assert storms["severity"].iloc[0] == "critical"
    # an hour of stream time later the window is clear: alerts flow again
    later = detector._storm(
        lake_writer, _found("stuck", 3, 9000), clock + timedelta(hours=2), False
    )
    assert not later.any()


def test_a_sweep_flagging_a_large_share_of_open_legs_is_a_storm(detector, lake_writer):
    clock = datetime(2026, 8, 20, 10, tzinfo=UTC)
    detector.open_legs = 1000
    share = detector.rules.storm.max_share_of_open_legs
    held = detector._storm(lake_writer, _found("stuck", int(share * 1000) + 1), clock, swept=True)
    assert held.all()
    assert "open legs" in _ops(lake_writer, "alert_storm")["detail"].iloc[0]


def test_a_per_rule_budget_is_enforced(lake_writer, tmp_path: Path):
    raw = _edit(RULES_PATH, lambda r: r["rules"][2].update(budget_per_hour=10))
    rules = parse_rules(raw)
    det = Detector(lake_writer, rules=rules)
    clock = datetime(2026, 8, 20, 10, tzinfo=UTC)
    assert not det._storm(lake_writer, _found(rules.rules[2].id, 10), clock, False).any()
    assert det._storm(lake_writer, _found(rules.rules[2].id, 1, 10), clock, False).all()


# ------------------------------------------------------------------------------ safe reloads


@pytest.fixture
def live_files(tmp_path: Path) -> tuple[Path, Path]:
    rules, messages = tmp_path / "rules.yaml", tmp_path / "messages.yaml"
    shutil.copy(RULES_PATH, rules)
    shutil.copy(MESSAGES_PATH, messages)
    return rules, messages


def _rewrite(path: Path, text: str) -> None:
    path.write_text(text)
    st = path.stat()  # a distinct stamp even within the file system's time resolution
    import os

    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))


def test_reloaders_keep_the_last_good_version_and_report_a_bad_edit_once(live_files):
    rules_path, messages_path = live_files
    rules, templates = RulesReloader(rules_path), TemplateReloader(messages_path)
    good_rules, good_templates = rules.current, templates.current
    _rewrite(rules_path, rules_path.read_text().replace("kind: stuck", "kind: stuk"))
    _rewrite(messages_path, messages_path.read_text().replace("Hello {first_name}", "Hello {name}"))
    kept, error = rules.poll()
    assert kept is good_rules and "stuk" in error
    assert rules.poll() == (good_rules, None)  # reported once per bad version
    kept, error = templates.poll()
    assert kept is good_templates and "{name}" in error
    # a fix is picked up
    _rewrite(rules_path, RULES_PATH.read_text().replace("grace_hours: 8", "grace_hours: 9"))
    fixed, error = rules.poll()
    assert error is None and fixed.rules[-1].params["grace_hours"] == 9


def test_a_live_hook_survives_bad_edits_and_raises_operational_alerts(lake_writer, live_files):
    from pipelines.stream.land import BatchResult, ensure_stream_tables
    from pipelines.stream.live import LiveHook

    rules_path, messages_path = live_files
    ensure_stream_tables(lake_writer)
    hook = LiveHook(lake_writer, eta=False, rules_path=rules_path, templates_path=messages_path)
    before = hook.detector.rules
    _rewrite(rules_path, "rules: [this is: not, a rule")
    _rewrite(messages_path, "languages: {en: 12}\n")
    empty = pd.DataFrame(columns=["tracking_ref", "event_ts", "event_classifier"])
    hook(lake_writer, empty, BatchResult("b1"))
    hook(lake_writer, empty, BatchResult("b2"))  # the same bad versions: no second alert
    assert hook.detector.rules is before
    kinds = sorted(_ops(lake_writer)["kind"])
    assert kinds == ["rules_reload_failed", "templates_reload_failed"]
    composed = __import__("ml.alerts.messages", fromlist=["compose"]).compose(
        pd.DataFrame([{c: None for c in ALERT_COLUMNS} | _one_alert()]),
        pd.DataFrame(),
        hook.templates.current,
    )
    assert len(composed) == 1 and "ORD-1" in composed["body"].iloc[0]


def _one_alert() -> dict:
    return {
        "alert_id": "a1",
        "rule": "carrier_delay",
        "reason": "carrier_exception",
        "sub_reason": "DELAY",
        "severity": "medium",
        "order_id": "ORD-1",
        "customer_id": "CUS-1",
        "tracking_ref": "SWP1",
        "carrier_id": "swiftparcel",
    }


def test_a_bad_file_at_start_stops_the_start_with_a_clear_message(tmp_path: Path):
    bad = tmp_path / "rules.yaml"
    bad.write_text("rules:\n  - {id: x, kind: carrier_event, reason: stuck, severity: loud}\n")
    with pytest.raises(RulesError, match="severity"):
        RulesReloader(bad)
    worse = tmp_path / "messages.yaml"
    worse.write_text("languages: [en]\n")
    with pytest.raises(TemplateError):
        TemplateReloader(worse)


# ------------------------------------------------------------------------------ rule by rule


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A copy of the run's lake (tests/dashboard_world.py: built once, shared with the marts,
    dashboard, ETA and stream modules), with ``ORDERTOWER_HOME`` pointed at it."""
    from tests.dashboard_world import module_world

    yield from module_world(tmp_path_factory, "alert_world")


@pytest.fixture
def world_con(world: Path):
    from ordertower import lake
    from pipelines.stream.land import ensure_stream_tables

    con = lake.connect()
    ensure_stream_tables(con)
    if lake.table_exists(con, "ops", "exception_alerts"):
        con.execute("delete from ops.exception_alerts")
    try:
        yield con
    finally:
        con.close()


def _open_leg(con, mode: str = "last_mile") -> dict:
    return (
        con.execute(
            "select l.tracking_ref, l.shipment_id, l.carrier_id, s.service_level "
            "from staging.stg_tms__shipment_legs l join staging.stg_tms__shipments s "
            "using (shipment_id) where l.mode = ? order by l.tracking_ref limit 1",
            [mode],
        )
        .df()
        .iloc[0]
        .to_dict()
    )


CASES = [  # event -> rule, severity
    (("EXCEPTION", "LOST"), "lost_or_damaged", "critical"),
    (("EXCEPTION", "DAMAGED"), "lost_or_damaged", "critical"),
    (("EXCEPTION", "ADDRESS_ISSUE"), "address_or_refused", "high"),
    (("EXCEPTION", "REFUSED"), "address_or_refused", "high"),
    (("EXCEPTION", "DELAY"), "carrier_delay", "medium"),
    (("DELIVERY_FAILED", None), "delivery_failed", "high"),
    (("CUSTOMS_HOLD", None), "customs_hold", "medium"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("event", "rule", "severity"), CASES)
def test_each_carrier_event_raises_its_rule_with_severity_sla_and_priced_alternatives(
    world_con, event, rule: str, severity: str
):
    leg = _open_leg(world_con)
    det = Detector(world_con, rules=load_rules())
    at = pd.Timestamp("2026-08-20 10:00", tz="UTC")
    events = _events([(leg["tracking_ref"], at, "ACT", *event)])
    alerts = det.detect(world_con, events, sweep=False)
    assert list(alerts["rule"]) == [rule]
    a = alerts.iloc[0]
    assert a["severity"] == severity
    assert a["sla_minutes"] == det.rules.severity_sla_minutes[severity]
    assert a["shipment_id"] == leg["shipment_id"] and a["order_id"] and a["customer_id"]
    assert not a["suppressed"]
    options = json.loads(a["alternatives"])
    assert options and a["recommended_option"] == options[0]["action"]
    assert a["recommended_action"]
    for option in options:
        assert option["cost_eur"] >= 0 and option["kg_co2e"] >= 0
    if rule == "lost_or_damaged":  # the parcel will not arrive: keeping the plan is no option
        assert a["promise_at_risk"] and "keep" not in {o["action"] for o in options}
    # stored once: the same event again raises nothing new
    assert len(det.store(world_con, alerts)) == 1
    assert det.detect(world_con, events, sweep=False).empty


@pytest.mark.slow
def test_ordinary_scans_and_estimates_raise_no_event_alert(world_con):
    leg = _open_leg(world_con)
    det = Detector(world_con, rules=load_rules())
    at = pd.Timestamp("2026-08-20 10:00", tz="UTC")
    events = _events(
        [
            (leg["tracking_ref"], at, "ACT", "IN_TRANSIT"),
            (leg["tracking_ref"], at, "ACT", "OUT_FOR_DELIVERY"),
            (leg["tracking_ref"], at, "EST", "EXCEPTION", "LOST"),  # an estimate is no exception
        ]
    )
    assert det.detect(world_con, events, sweep=False).empty


@pytest.mark.slow
def test_a_future_dated_event_does_not_make_the_open_legs_stuck(world_con):
    """The world's last day as the stream clock, then one event days ahead: the sweep finds the
    same stuck legs as before it (the baseline clock jumps and flags far more)."""
    last = world_con.execute(
        "select max(event_at) from staging.stg_carriers__carrier_events where is_actual"
    ).fetchone()[0]
    refs = [
        r[0]
        for r in world_con.execute(
            "select tracking_ref from staging.stg_tms__shipment_legs order by 1 limit 3"
        ).fetchall()
    ]
    day = pd.Timestamp(last)
    corroborated = _events([(r, day) for r in refs])
    # three days ahead: every open leg's last scan looks older than its stuck threshold (a jump
    # past the sweep's 7-day look-back would hide them instead)
    future = _events([(refs[0], day + timedelta(days=3))])

    def stuck_at(clock_rules, events) -> int:
        det = Detector(world_con, rules=clock_rules)
        for batch in events:
            det.advance(batch)
        found = det.detect(world_con, None, sweep=True)
        return int((found["rule"] == "stuck").sum())

    guarded = load_rules()
    at_the_world_time = stuck_at(guarded, [corroborated])
    assert stuck_at(guarded, [corroborated, future]) == at_the_world_time
    assert stuck_at(load_rules(BASELINE), [corroborated, future]) > at_the_world_time
