"""``ordertower alerts quality``: replay a simulated world's carrier events through the stream's
own lander and alert hook, before and after issue 18, and score the alerts against the truth.

The world is a small simulated one in its own home (``<bench_dir>/alerts-quality/``, built once
and reused: simulate, ingest, dbt, an ETA champion for the predicted-late rule), never the lake
the user works with. Each run empties the stream tables and replays the world's carrier feeds in
receipt order (``read_messages``, as ``make live`` publishes them) in batches through
:class:`pipelines.stream.land.StreamLander` with :class:`pipelines.stream.live.LiveHook`: the
same contract, dedup, clock, rules, storm guard and message composition as ``ordertower stream``,
in-process (no broker; the broker's part is tested elsewhere). Every message's receipt time is
the wall clock when its batch lands, as in a live replay.

* **before**: ``ml/alerts/baseline_rules.yaml`` (the rules as they were) with the unbounded
  watermark clock, no storm guard, and a message for every alert;
* **after**: ``ml/alerts/rules.yaml`` with the guarded clock and the storm guard, and the
  message policy of ``messages.yaml`` (``only_if_promise_at_risk``, ``repeat_after_hours``).

Both sweep the time rules every 30 minutes of their own stream clock, so the comparison is the
rules' and the clock's, not the sweep cadence's. Each runs twice: on the world's feeds as they
are, and with ONE event of the middle day dated ten days ahead (a carrier's clock fault, the
kind that flooded the demo; the small world has no sea legs, whose estimates did it there).
Scoring: :mod:`ml.alerts.quality`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from ml.alerts import quality
from ml.alerts.rules import RULES_PATH, RuleSet, load_rules
from ordertower import lake
from ordertower.settings import PROJECT_ROOT, environment, get_settings

log = logging.getLogger("ordertower.alerts")

BASELINE_RULES = Path(quality.__file__).with_name("baseline_rules.yaml")
RESULTS_DIR = PROJECT_ROOT / "bench" / "results"
WORLD = {"orders": 2000, "days": 12, "seed": 21, "dirty_rate": 0.003}
STREAM_TABLES = (
    "raw.carrier_events_stream",
    "ops.stream_batches",
    "ops.exception_alerts",
    "ops.crm_outbox",
    "ops.operational_alerts",
    "ml.shipment_eta_updates",
)


def _home(path: Path):
    return environment({"ORDERTOWER_HOME": str(path), "DAGSTER_HOME": None})


def build_world(home: Path, world: dict | None = None) -> Path:
    """Simulate and materialise the quality world in ``home`` (once: reused when built)."""
    from pipelines.cli import main

    world = {**WORLD, **(world or {})}
    marker = home / "alerts-quality-world.json"
    if marker.exists() and json.loads(marker.read_text()) == world:
        return home
    home.mkdir(parents=True, exist_ok=True)
    with _home(home):
        args = ["--orders", str(world["orders"]), "--days", str(world["days"])]
        args += ["--seed", str(world["seed"]), "--dirty-rate", str(world["dirty_rate"])]
        if main(["simulate", *args]) != 0:
            raise RuntimeError("simulate failed")
        select = "not group:dispatch and not group:risk and not group:eta"
        if main(["materialize", "--select", select, "--no-dbt-tests"]) != 0:
            raise RuntimeError("materialize failed")
        _train_eta(home)
    marker.write_text(json.dumps(world))
    return home


def _train_eta(home: Path) -> None:
    """An ETA champion for the predicted-late rule (a young world: 1 day maturity)."""
    from ml.eta import pipeline as eta
    from ml.eta.config import load_policy

    policy = load_policy(maturity_days=1, min_test_shipments=60)
    con = lake.connect()
    try:
        trained = eta.train_candidate(con, policy)
        report = eta.evaluate_candidate(con, trained.candidate, policy)
        eta.promote(trained.candidate, report)
    except Exception as exc:  # noqa: BLE001 - without a model the rule is reported unmeasured
        log.warning("no ETA champion for the quality world (predicted_late unmeasured): %s", exc)
    finally:
        con.close()


def _reset(con) -> None:
    for table in STREAM_TABLES:
        if lake.table_exists(con, *table.split(".")):
            con.execute(f"delete from {table}")


def future_dated(messages: list, days_ahead: float = 10.0) -> object:
    """A copy of the first parcel-webhook message of the list, dated ``days_ahead`` later with
    a new id: one carrier's clock fault (the kind that flooded the demo)."""
    from pipelines.stream.publish import LiveMessage

    for m in messages:
        if m.feed_format != "parcel_webhook_json":
            continue
        record = json.loads(m.body)
        at = pd.Timestamp(record["checkpoint"]["checkpoint_time"]) + pd.Timedelta(days=days_ahead)
        record["checkpoint"]["checkpoint_time"] = at.isoformat()
        record["msg_id"] = f"{record['msg_id']}-future"
        return LiveMessage(m.event_time, m.carrier_id, m.feed_format, json.dumps(record).encode())
    raise ValueError("no parcel webhook message to date in the future")


def replay(
    rules: RuleSet,
    batch_size: int = 500,
    eta: bool = True,
    inject_future: bool = False,
    message_policy: bool = True,
) -> dict:
    """Replay every carrier event of the current home's landing zone; returns what was stored.
    ``inject_future``: one event of the middle day is sent dated ten days ahead;
    ``message_policy=False``: every alert gets a message, as before issue 18 (no
    ``only_if_promise_at_risk``, no ``repeat_after_hours``)."""
    from pipelines.stream.land import Delivery, StreamLander
    from pipelines.stream.live import LiveHook
    from pipelines.stream.publish import landed_days, read_messages

    landing = get_settings().landing_dir
    # receipt order: day by day (a carrier file holds the events received that day), each day in
    # event-time order as `make live` publishes it; a carrier's estimate of an arrival days ahead
    # arrives with the day it was sent
    days = landed_days(landing)
    by_day = [(day, read_messages(landing, day, day)) for day in days]
    if inject_future:
        day, middle = by_day[len(by_day) // 2]
        middle.insert(len(middle) // 2, future_dated(middle))
    messages = [m for _, day_messages in by_day for m in day_messages]
    day_end = [pd.Timestamp(day, tz="UTC") + pd.Timedelta(days=1) for day, ms in by_day for _ in ms]
    con = lake.connect(inline_rows=max(2 * batch_size, 1000))
    try:
        _reset(con)
        hook = LiveHook(con, eta=eta, rules=rules)
        if not message_policy:
            hook.templates.current = replace(
                hook.templates.current, only_if_promise_at_risk=frozenset(), repeat_after_hours=None
            )
        lander = StreamLander(con, "alerts-quality", [hook])
        clock_max_lead_h = 0.0
        for start in range(0, len(messages), batch_size):
            now = datetime.now(UTC)
            chunk = messages[start : start + batch_size]
            lander.land([Delivery(m.body, m.carrier_id, m.feed_format, now) for m in chunk])
            # how far the alert clock ran ahead of the world (the end of the day being replayed)
            world_now = day_end[start + len(chunk) - 1]
            lead = (pd.Timestamp(hook.detector.clock()) - world_now).total_seconds() / 3600
            clock_max_lead_h = max(clock_max_lead_h, lead)
        alerts = con.execute(
            "select rule, shipment_id, order_id, tracking_ref, suppressed, severity "
            "from ops.exception_alerts"
        ).df()
        outbox = con.execute("select message_id, order_id from ops.crm_outbox").df()
        replayed = set(
            con.execute(
                "select distinct l.shipment_id from raw.carrier_events_stream e "
                "join staging.stg_tms__shipment_legs l using (tracking_ref)"
            )
            .df()["shipment_id"]
            .tolist()
        )
        ops = con.execute("select kind, subject, detail from ops.operational_alerts").df()
        return {
            "events": len(messages),
            "alerts": alerts,
            "outbox": outbox,
            "replayed": replayed,
            "operational_alerts": ops,
            "clock_max_lead_hours": round(clock_max_lead_h, 1),
            "eta_model": hook.scorer is not None,
        }
    finally:
        con.close()


def _legs_plan() -> pd.DataFrame:
    con = lake.connect(read_only=True)
    try:
        return con.execute(
            "select tracking_ref, shipment_id, planned_departure_at "
            "from staging.stg_tms__shipment_legs "
            "qualify row_number() over (partition by tracking_ref order by ingested_at desc) = 1"
        ).df()
    finally:
        con.close()


def measure(
    rules_path: Path, label: str, truth: quality.Truth, batch_size: int, inject_future: bool
) -> dict:
    rules = load_rules(rules_path)
    rules = replace(rules, sweep_every_clock_minutes=30.0, sweep_every_s=1e9)
    baseline = rules_path == BASELINE_RULES
    run = replay(
        rules, batch_size=batch_size, inject_future=inject_future, message_policy=not baseline
    )
    report = quality.score(run["alerts"], run["outbox"], truth, run["replayed"])
    report["label"] = label
    report["rules_file"] = str(rules_path.relative_to(PROJECT_ROOT))
    report["clock"] = rules.clock
    report["events_replayed"] = run["events"]
    report["clock_max_lead_hours"] = run["clock_max_lead_hours"]
    report["eta_model"] = run["eta_model"]
    report["operational_alerts"] = run["operational_alerts"].to_dict("records")
    report["goals_met"] = quality.goals(report)
    return report


def run_quality(
    home: Path | None = None, world: dict | None = None, batch_size: int = 500, write: bool = True
) -> dict:
    """Before and after on the quality world -> ``bench/results/alerts-quality-<date>.json``
    and its section of BENCHMARKS.md."""
    home = Path(home or get_settings().bench_dir / "alerts-quality")
    build_world(home, world)
    with _home(home):
        from pipelines.stream.publish import landed_days

        days = landed_days(get_settings().landing_dir)
        truth = quality.load_truth(
            get_settings().landing_dir, _legs_plan(), quality.world_end_of(days[-1])
        )
        runs = {
            f"{label}{suffix}": measure(path, label, truth, batch_size, future)
            for suffix, future in (("", False), ("_one_future_event", True))
            for label, path in (("before", BASELINE_RULES), ("after", RULES_PATH))
        }
    data = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "world": {**WORLD, **(world or {})},
        "batch_size": batch_size,
        **runs,
    }
    if write:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        path = RESULTS_DIR / f"alerts-quality-{datetime.now(UTC).date().isoformat()}.json"
        path.write_text(json.dumps(data, indent=2, default=str) + "\n")
        data["path"] = str(path)
        from pipelines.bench import write_benchmarks_md

        write_benchmarks_md()
    return data
