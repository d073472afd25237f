"""Fault tests of the whole live path on a real broker: events, ETAs, alerts and CRM messages.

A copy of the run's shared lake (tests/dashboard_world.py: ingestion and the dbt lake) gets an
ETA model of its own. Then:

* ``ordertower stream`` is killed with SIGKILL mid-stream and restarted: every published event
  is stored exactly once, every alert exists once, every alert's message reaches the CRM once;
* the broker connection is cut twice mid-stream: the same holds;
* ``ordertower stream`` is killed inside a batch's transaction, after its alerts and CRM outbox
  rows are written and before the commit: the same holds (the broken-lake, broker-restart and
  random-kill faults are in tests/test_stream_faults.py).

Slow (a world is copied and a model trained), and ``service`` (RabbitMQ): CI runs them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pika
import pytest
from broker_support import Proxy, fresh_topology, require_broker

from ordertower import lake
from pipelines.contracts.enforce import enforce
from pipelines.contracts.model import load_contract
from pipelines.crm.outbox import run_sender
from pipelines.crm.receiver import CrmReceiver
from pipelines.ingest.runner import carrier_registry
from pipelines.stream.consumer import StreamConsumer
from pipelines.stream.land import Delivery, normalise
from pipelines.stream.publish import landed_days, publish, read_messages
from tests.dashboard_world import module_world

pytestmark = [pytest.mark.slow, pytest.mark.service]


@pytest.fixture(scope="module")
def live_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A copy of the run's lake (tests/dashboard_world.py: built once, shared) with an ETA
    champion, and no stream prefix or CRM of the caller's."""
    require_broker()
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("ORDERTOWER_STREAM_PREFIX", raising=False)
        mp.delenv("ORDERTOWER_CRM_URL", raising=False)
        yield from module_world(tmp_path_factory, "live_world", _train_eta_champion)


def _train_eta_champion() -> None:
    """A 21-day world is too young for the ETA policy's 14-day maturity: train a champion on
    what has matured after 1 day, so the stream predicts live ETAs (and predicted-late alerts)."""
    from ml.eta import pipeline as eta
    from ml.eta.config import load_policy
    from ml.eta.live import EtaScorer

    policy = load_policy(maturity_days=1, min_test_shipments=60)
    con = lake.connect()
    try:
        trained = eta.train_candidate(con, policy)
        report = eta.evaluate_candidate(con, trained.candidate, policy)
        eta.promote(trained.candidate, report)
    finally:
        con.close()
    assert EtaScorer.load() is not None, report["gate"]


def _messages(home: Path):
    landing = home / "landing"
    days = landed_days(landing)
    return read_messages(landing, days[-4], days[-1])


def _expected_events(messages) -> set[tuple[str, str]]:
    """The events a correct consumer stores: decodable, valid by the contract, distinct."""
    con = lake.connect(read_only=True)
    registry = carrier_registry(con)
    con.close()
    deliveries = [Delivery(m.body, m.carrier_id, m.feed_format, None) for m in messages]
    events, _, _ = normalise(deliveries, registry)
    result = enforce(pd.DataFrame.from_records(events), load_contract("carrier_events"))
    valid = result.typed.loc[~result.typed.index.isin(list(result.reasons))]
    return set(zip(valid["carrier_id"], valid["event_id"], strict=True))


def _reset_stream_tables() -> None:
    con = lake.connect()
    for table in (
        "raw.carrier_events_stream",
        "ops.stream_batches",
        "ops.exception_alerts",
        "ops.crm_outbox",
        "ml.shipment_eta_updates",
    ):
        if lake.table_exists(con, *table.split(".")):
            con.execute(f"delete from {table}")
    con.close()


def _batches() -> int:
    try:
        con = lake.connect(read_only=True)
    except lake.LakeError:
        return 0
    try:
        if not lake.table_exists(con, "ops", "stream_batches"):
            return 0
        return con.execute("select count(*) from ops.stream_batches").fetchone()[0]
    finally:
        con.close()


def _assert_exactly_once(expected: set, receiver: CrmReceiver) -> dict:
    con = lake.connect(read_only=True)
    try:
        keys = con.execute("select carrier_id, event_id from raw.carrier_events_stream").fetchall()
        # alerts of a storming rule are stored suppressed, without a customer message
        alerts = con.execute(
            "select alert_id, case when coalesce(suppressed, false) then null else customer_id "
            "end from ops.exception_alerts"
        ).fetchall()
        outbox = con.execute("select message_id, alert_id, status from ops.crm_outbox").fetchall()
        etas = con.execute("select count(*) from ml.shipment_eta_updates").fetchone()[0]
    finally:
        con.close()
    assert len(keys) == len(set(keys)), "an event was stored twice"
    assert set(keys) == expected, "an event was lost (or one that is invalid was stored)"
    assert len(alerts) == len({a for a, _ in alerts}) > 0, "an alert was raised twice"
    with_customer = {a for a, c in alerts if c}
    # a message only for an alert with a customer, never two for one alert (not every alert is
    # worth a message: ml/alerts/messages.worth_a_message)
    assert {a for _, a, _ in outbox} <= with_customer, "a message without its alert"
    assert len(outbox) == len({a for _, a, _ in outbox}), "an alert has two messages"
    assert len(outbox) == len({m for m, _, _ in outbox})
    assert all(status == "sent" for _, _, status in outbox)
    received = receiver.messages()
    assert sorted(m["idempotency_key"] for m in received) == sorted(m for m, _, _ in outbox)
    return {"events": len(keys), "alerts": len(alerts), "messages": len(outbox), "etas": etas}


def test_sigkill_and_restart_store_every_event_and_send_every_message_once(
    live_world: Path, tmp_path: Path
):
    _reset_stream_tables()
    messages = _messages(live_world)
    expected = _expected_events(messages)
    with fresh_topology() as topology, CrmReceiver(tmp_path / "crm.sqlite") as receiver:
        publish(messages, topology)
        env = {
            **os.environ,
            "ORDERTOWER_STREAM_PREFIX": topology.prefix,
            "ORDERTOWER_CRM_URL": receiver.url,
        }
        command = [
            sys.executable,
            "-m",
            "pipelines.cli",
            "stream",
            "--batch-size",
            "150",
            "--max-wait",
            "0.2",
        ]
        first = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 240
        while _batches() < 3 and time.monotonic() < deadline and first.poll() is None:
            time.sleep(0.2)
        assert first.poll() is None, first.stderr.read().decode()[-2000:]
        first.send_signal(signal.SIGKILL)  # mid-stream: a batch in hand, messages unsent
        first.wait(timeout=30)
        killed_at = _batches()
        assert killed_at >= 3
        second = subprocess.run(
            [*command, "--idle-exit", "6"], env=env, capture_output=True, text=True, timeout=600
        )
        assert second.returncode == 0, second.stderr[-3000:]
        counts = _assert_exactly_once(expected, receiver)
    assert counts["events"] > 1000 and counts["etas"] > 0


def test_dropped_broker_connections_lose_and_duplicate_nothing_end_to_end(
    live_world: Path, tmp_path: Path
):
    from ordertower.settings import get_settings
    from pipelines.stream.live import LiveHook

    _reset_stream_tables()
    messages = _messages(live_world)
    expected = _expected_events(messages)
    url = pika.URLParameters(get_settings().broker_url)
    proxy = Proxy((url.host, url.port))
    creds = url.credentials
    proxied = f"amqp://{creds.username}:{creds.password}@127.0.0.1:{proxy.port}/%2F"
    with fresh_topology() as topology, CrmReceiver(tmp_path / "crm.sqlite") as receiver:
        publish(messages, topology)
        consumer = StreamConsumer(
            topology, url=proxied, batch_size=150, max_wait=0.2, make_hooks=lambda c: [LiveHook(c)]
        )
        cuts: list[int] = []

        def cut_twice() -> None:
            for _ in range(2):
                while (
                    consumer.stats.batches < 2 + 3 * len(cuts) and not consumer.stop_event.is_set()
                ):
                    time.sleep(0.05)
                proxy.cut()
                cuts.append(consumer.stats.batches)

        cutter = threading.Thread(target=cut_twice, daemon=True)
        cutter.start()
        try:
            stats = consumer.run(idle_timeout=5.0)
        finally:
            proxy.close()
        assert len(cuts) == 2 and stats.reconnects >= 2
        stop, lock = threading.Event(), threading.Lock()  # one lake writer at a time here
        sender = threading.Thread(
            target=run_sender,
            args=(stop,),
            kwargs={"interval": 0.2, "url": receiver.url, "lock": lock},
        )
        sender.start()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with lock:
                con = lake.connect(read_only=True)
                pending = con.execute(
                    "select count(*) from ops.crm_outbox where status <> 'sent'"
                ).fetchone()[0]
                con.close()
            if not pending:
                break
            time.sleep(0.5)
        stop.set()
        sender.join(timeout=60)
        _assert_exactly_once(expected, receiver)


def test_sigkill_inside_the_transaction_after_the_outbox_is_written_sends_every_message_once(
    live_world: Path, tmp_path: Path
):
    """Killed after the batch's events, ETAs, alerts and CRM outbox rows are written and before
    its commit (tests/stream_fault_helper.py blocks there): the restart stores and sends each
    once."""
    _reset_stream_tables()
    messages = _messages(live_world)
    expected = _expected_events(messages)
    helper = Path(__file__).with_name("stream_fault_helper.py")
    marker = tmp_path / "in-transaction"
    with fresh_topology() as topology, CrmReceiver(tmp_path / "crm.sqlite") as receiver:
        publish(messages, topology)
        env = {
            **os.environ,
            "ORDERTOWER_STREAM_PREFIX": topology.prefix,
            "ORDERTOWER_CRM_URL": receiver.url,
        }
        args = ["stream", "--batch-size", "150", "--max-wait", "0.2"]
        # the log to a file: a pipe nobody reads fills up and blocks the consumer, and reading
        # it to its end waits for a consumer that never exits
        log_path = tmp_path / "blocked.log"
        with log_path.open("wb") as log_file:
            blocked = subprocess.Popen(
                [sys.executable, str(helper), "--block-at", "4", "--marker", str(marker), "--"]
                + args,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=log_file,
            )
        deadline = time.monotonic() + 300
        while not marker.exists() and time.monotonic() < deadline and blocked.poll() is None:
            time.sleep(0.2)
        if not marker.exists():
            blocked.kill()
            blocked.wait(timeout=30)
            pytest.fail(f"the fourth batch never blocked: {log_path.read_text()[-2000:]}")
        _, landed, outboxed = marker.read_text().split()
        assert int(landed) > 0
        blocked.send_signal(signal.SIGKILL)
        blocked.wait(timeout=30)
        assert _batches() == 3  # the fourth batch's rows (and outbox messages) never committed
        second = subprocess.run(
            [sys.executable, "-m", "pipelines.cli", *args, "--idle-exit", "6"],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert second.returncode == 0, second.stderr[-3000:]
        counts = _assert_exactly_once(expected, receiver)
    assert counts["events"] > 1000 and counts["messages"] > 0
