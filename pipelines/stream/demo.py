"""``ordertower live-demo`` (``make live``, and the end of ``make demo``): the live path end to end.

A local CRM receiver, ``ordertower stream`` in its own process, the world's last carrier day
published at a fixed rate, then the tracking marts rebuilt the way the stream sensor's job does
(``refresh_tracking_marts``) and a summary. Every piece is the production one; only the CRM is
the local receiver (``pipelines/crm/receiver.py``), unless ``ORDERTOWER_CRM_URL`` points at a
real one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from ordertower.settings import get_settings
from pipelines.stream.broker import BrokerError, Topology, connect, reachable, redact
from pipelines.stream.publish import landed_days, publish, read_messages


class LiveDemoError(RuntimeError):
    """The live demo cannot run here (no broker, no landing zone)."""


def run_live_demo(rate: float = 1000.0, days: int = 1, idle_exit: float = 15.0) -> dict:
    settings = get_settings()
    if not reachable(settings.broker_url, timeout=2.0):
        raise LiveDemoError(f"no message broker at {redact(settings.broker_url)}")
    landing = settings.landing_dir
    landed = landed_days(landing)
    if not landed:
        raise LiveDemoError(f"no carrier feeds under {landing}: run `make demo` first")
    first = landed[max(0, len(landed) - days)]
    messages = read_messages(landing, first, landed[-1])
    topology = Topology(f"{Topology.from_env().prefix}-demo-{uuid.uuid4().hex[:6]}")
    env = {**os.environ, "ORDERTOWER_STREAM_PREFIX": topology.prefix}
    receiver = None
    if not os.environ.get("ORDERTOWER_CRM_URL"):
        from pipelines.crm.receiver import CrmReceiver

        receiver = CrmReceiver(Path(settings.home) / "crm_demo.sqlite").start()
        env["ORDERTOWER_CRM_URL"] = receiver.url
    try:
        connection = connect()
        topology.declare(connection.channel())
        connection.close()
    except BrokerError as exc:
        raise LiveDemoError(str(exc)) from exc
    log = Path(settings.home) / "stream_demo.log"
    print(
        f"live: ordertower stream (log {log}) <- {len(messages):,} carrier events of "
        f"{first}..{landed[-1]} at {rate:g}/s; "
        f"CRM {redact(env['ORDERTOWER_CRM_URL'])}",
        flush=True,
    )
    started = time.perf_counter()
    with open(log, "w") as out:
        consumer = subprocess.Popen(
            [sys.executable, "-m", "pipelines.cli", "stream", "--idle-exit", str(idle_exit)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            stats = publish(messages, topology, rate=rate)
            code = consumer.wait(timeout=3600)
        finally:
            if consumer.poll() is None:
                consumer.terminate()
                consumer.wait(timeout=60)
            connection = connect()
            topology.delete(connection.channel())
            connection.close()
    crm_received = len(receiver.messages()) if receiver is not None else None
    if receiver is not None:
        receiver.stop()
    if code != 0:
        raise LiveDemoError(f"ordertower stream exited with {code}: see {log}")
    print(f"live: streamed in {time.perf_counter() - started:.0f} s; refreshing the tracking marts")
    from pipelines.defs.stream.automation import TRACKING_MARTS
    from pipelines.materialize import materialize

    materialize(select=" or ".join(f"key:{k.to_user_string()}" for k in TRACKING_MARTS))
    return {
        "published": stats.published,
        "seconds": round(time.perf_counter() - started, 1),
        "crm_received": crm_received,
    }
