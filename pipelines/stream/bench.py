"""Latency of the live path, measured end to end on the current lake (``make bench``).

One run, on the machine's 2 cores, with every part a separate process as in production:

* the publisher sends the world's carrier events at ``rate`` messages/s for ``seconds``;
* ``ordertower stream`` (a subprocess) lands them, predicts ETAs, raises alerts and fills the
  outbox; its sender POSTs the messages to a local CRM receiver;
* every ``refresh_every`` seconds the tracking marts are rebuilt with the same dbt command the
  stream sensor's job runs (the sensor's interval), while the stream keeps writing.

Measured from the publisher's timestamp on each message: published -> stored (the batch's
commit), published -> alert in the outbox (event-triggered alerts: the commit that stored
alert and message), published -> delivered to the CRM, published -> visible in
fct_tracking_events (the end of the first rebuild that holds it). The baseline in the same run is
the polling design it replaces: the same events dropped as a file every ``poll_minutes`` and
ingested by the batch path, whose status latency is the wait for the next drop plus the
measured ingest and rebuild time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from ordertower import lake
from ordertower.settings import get_settings
from pipelines.stream.broker import Topology, connect, queue_depth, reachable
from pipelines.stream.publish import landed_days, publish, read_messages

TRACKING_MODELS = [
    "fct_tracking_events",
    "fct_order_timeline",
    "fct_order_exceptions",
    "fct_exception_alerts",
]


def _quantiles(values: list[float] | np.ndarray) -> dict[str, float | int | None]:
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return {"n": 0, "p50_s": None, "p95_s": None, "max_s": None}
    return {
        "n": int(arr.size),
        "p50_s": round(float(np.percentile(arr, 50)), 2),
        "p95_s": round(float(np.percentile(arr, 95)), 2),
        "max_s": round(float(arr.max()), 2),
    }


def _refresh_marts(models: list[str] | None = None) -> tuple[float, float]:
    """The sensor job's dbt build of the tracking marts; (wall end as epoch, seconds)."""
    started = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines.cli",
            "dbt",
            "build",
            "--select",
            *(models or TRACKING_MODELS),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"tracking marts rebuild failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
        )
    return time.time(), time.perf_counter() - started


def _visible_latencies(refreshes: list[float], since: datetime) -> list[float]:
    """For each streamed event in the mart: the end of the first rebuild after its commit,
    minus its publication (a rebuild holds every event committed before it started)."""
    con = lake.connect(read_only=True)
    try:
        rows = con.execute(
            """
            select epoch(s._published_at), epoch(b.committed_at)
            from raw.carrier_events_stream s
            join ops.stream_batches b on b.batch_id = s._run_id
            join marts.fct_tracking_events m on m.event_id = s.event_id
            where s._published_at is not null and b.started_at >= ?
            """,
            [since],
        ).fetchall()
    finally:
        con.close()
    ends = np.array(sorted(refreshes))
    out = []
    for published, committed in rows:
        # the first rebuild that started after the commit ended at ends[i]; rebuild start =
        # end - duration is not recorded per event, so use the first end after the commit plus
        # the rebuild that was running then: conservative (later) by up to one rebuild
        i = np.searchsorted(ends, committed)
        if i < len(ends):
            out.append(ends[i] - published)
    return out


def measure(
    rate: float = 500.0,
    seconds: float = 60.0,
    refresh_every: float = 60.0,
    poll_minutes: float = 15.0,
    landing: Path | None = None,
) -> dict[str, Any]:
    """Run the live path at ``rate`` msgs/s for ``seconds`` on the current lake."""
    settings = get_settings()
    if not reachable():
        return {"skipped": "no message broker reachable at ORDERTOWER_BROKER_URL"}
    landing = landing or settings.landing_dir
    days = landed_days(landing)
    messages: list = []
    for day in reversed(days):  # the latest days, enough for the run
        messages = read_messages(landing, day, days[-1])
        if len(messages) >= rate * seconds:
            break
    messages = messages[: int(rate * seconds)]
    if not messages:
        return {"skipped": f"no carrier feeds under {landing}"}
    topology = Topology(f"bench-{uuid.uuid4().hex[:8]}")
    env = {**os.environ, "ORDERTOWER_STREAM_PREFIX": topology.prefix}
    from pipelines.crm.receiver import CrmReceiver

    # the views the stream reads and the marts it feeds, as this code defines them
    _refresh_marts(
        [
            "stg_carriers__carrier_events",
            "stg_ops__exception_alerts",
            "stg_ops__crm_outbox",
            *TRACKING_MODELS,
        ]
    )
    run_started = datetime.now(UTC)
    crm_db = settings.home / f"bench_crm_{topology.prefix}.sqlite"
    receiver = CrmReceiver(crm_db).start()
    env["ORDERTOWER_CRM_URL"] = receiver.url
    connection = connect()
    topology.declare(connection.channel())
    connection.close()
    consumer = subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "stream", "--idle-exit", "20"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    refreshes: list[float] = []
    refresh_seconds: list[float] = []
    depth: list[int] = []
    stop = threading.Event()

    def refresher() -> None:
        while not stop.wait(refresh_every):
            end, took = _refresh_marts()
            refreshes.append(end)
            refresh_seconds.append(took)

    def watch_queue() -> None:
        conn = connect()
        ch = conn.channel()
        while not stop.wait(1.0):
            depth.append(queue_depth(ch, topology.queue))
        conn.close()

    try:
        # the clock runs once the consumer has loaded its model and rules and subscribed
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and consumer.poll() is None:
            conn = connect()
            ready = conn.channel().queue_declare(topology.queue, passive=True).method.consumer_count
            conn.close()
            if ready:
                break
            time.sleep(0.5)
        threads = [
            threading.Thread(target=refresher, daemon=True),
            threading.Thread(target=watch_queue, daemon=True),
        ]
        for t in threads:
            t.start()
        stats = publish(messages, topology, rate=rate)
        consumer.wait(timeout=seconds * 10 + 300)
        stop.set()
        for t in threads:
            t.join(timeout=600)
        end, took = _refresh_marts()  # the last rebuild picks up the tail
        refreshes.append(end)
        refresh_seconds.append(took)
        time.sleep(3.0)
    finally:
        stop.set()
        if consumer.poll() is None:
            consumer.terminate()
            consumer.wait(timeout=60)
        connection = connect()
        topology.delete(connection.channel())
        connection.close()

    con = lake.connect(read_only=True)
    try:
        stored = con.execute(
            "select epoch(b.committed_at) - epoch(s._published_at) from raw.carrier_events_stream s "
            "join ops.stream_batches b on b.batch_id = s._run_id where b.started_at >= ?",
            [run_started],
        ).fetchall()
        alerts = con.execute(
            "select a.rule, epoch(b.committed_at) - epoch(a.published_at) from ops.exception_alerts a "
            "join ops.stream_batches b on b.batch_id = a.batch_id where a.published_at is not null "
            "and b.started_at >= ?",
            [run_started],
        ).fetchall()
        counts = con.execute(
            "select count(*), sum(received), sum(landed), sum(duplicates), sum(quarantined), "
            "sum(alerts), sum(messages), sum(eta_updates), epoch(max(committed_at)) - "
            "epoch(min(started_at)) from ops.stream_batches where started_at >= ?",
            [run_started],
        ).fetchone()
        outbox = con.execute(
            "select status, count(*) from ops.crm_outbox where created_at >= ? group by 1",
            [run_started],
        ).fetchall()
        sent = con.execute(
            "select a.published_at, o.sent_at from ops.crm_outbox o join ops.exception_alerts a "
            "using (alert_id) where o.sent_at is not null and a.published_at is not null "
            "and o.created_at >= ?",
            [run_started],
        ).fetchall()
    finally:
        con.close()
    visible = _visible_latencies(refreshes, run_started)
    batches, received, landed, dups, quarantined, n_alerts, n_msgs, etas, span = counts
    ingest_per_event = None
    result: dict[str, Any] = {
        "rate_target_per_s": rate,
        "seconds_target": seconds,
        "published": stats.published,
        "publish_rate_per_s": round(stats.published / stats.seconds, 1) if stats.seconds else None,
        "consumer": {
            "batches": batches,
            "received": received,
            "landed": landed,
            "duplicates": dups,
            "quarantined": quarantined,
            "eta_updates": etas,
            "alerts": n_alerts,
            "messages": n_msgs,
            "events_per_s": round(received / span, 1) if span else None,
            "max_queue_depth": max(depth) if depth else None,
        },
        "published_to_stored": _quantiles([r[0] for r in stored]),
        "published_to_alert_in_outbox": _quantiles([r[1] for r in alerts]),
        "published_to_crm_delivered": _quantiles([(s - p).total_seconds() for p, s in sent]),
        "published_to_visible_in_mart": _quantiles(visible),
        "mart_refresh": {
            "every_s": refresh_every,
            "runs": len(refresh_seconds),
            "seconds_p50": round(float(np.median(refresh_seconds)), 1) if refresh_seconds else None,
            "seconds_max": round(max(refresh_seconds), 1) if refresh_seconds else None,
        },
        "outbox": dict(outbox),
        "stream_stderr_tail": (consumer.stderr.read()[-600:] if consumer.stderr else ""),
    }
    # the polling baseline: a file every poll_minutes, then the batch ingest and the same rebuild
    refresh_p50 = result["mart_refresh"]["seconds_p50"] or 0.0
    result["baseline_polling"] = {
        "poll_minutes": poll_minutes,
        "status_latency_p50_s": round(poll_minutes * 60 * 0.5 + refresh_p50, 1),
        "status_latency_p95_s": round(poll_minutes * 60 * 0.95 + refresh_p50, 1),
        "note": "uniform arrival within the drop interval + the measured rebuild; ingest not counted",
        "ingest_per_event": ingest_per_event,
    }
    result["crm_received"] = len(receiver.messages())
    receiver.stop()
    crm_db.unlink(missing_ok=True)
    return result


def main() -> None:  # pragma: no cover - `python -m pipelines.stream.bench`
    print(json.dumps(measure(), indent=2, default=str))


if __name__ == "__main__":  # pragma: no cover
    main()
