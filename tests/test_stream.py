"""The live carrier-event stream: landing micro-batches, and the consumer on a real RabbitMQ.

Tests marked ``service`` talk to the broker at ORDERTOWER_BROKER_URL (default 127.0.0.1:5672).
Outside CI they skip with a reason when none is reachable; under CI=true they must run. Each test
declares its own exchange and queues (a unique prefix) and deletes them afterwards.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pika
import pytest
from broker_support import Proxy, fresh_topology

from ordertower import lake
from pipelines.simulator import simulate
from pipelines.stream.broker import Topology, connect
from pipelines.stream.consumer import StreamConsumer
from pipelines.stream.land import Delivery, StreamLander
from pipelines.stream.publish import landed_days, publish, read_messages

NOW = datetime(2026, 9, 1, 12, 0, tzinfo=UTC)


def _webhook(msg_id: str, ref: str = "SP123", subtag: str = "InTransit_001") -> bytes:
    return json.dumps(
        {
            "msg_id": msg_id,
            "event": "tracking_update",
            "carrier": "swiftparcel",
            "tracking_number": ref,
            "checkpoint": {
                "tag": subtag.split("_")[0],
                "subtag": subtag,
                "checkpoint_time": "2026-09-01T10:00:00+02:00",
                "message": "In transit",
                "location": {"city": "Lyon", "country_iso2": "FR", "lat": 45.76, "lon": 4.84},
            },
        }
    ).encode()


def _delivery(body: bytes, carrier: str = "swiftparcel", feed: str = "parcel_webhook_json", **kw):
    return Delivery(body, carrier, feed, NOW, **kw)


# ------------------------------------------------------------------------------ landing


def test_a_batch_lands_once_and_a_redelivery_is_a_duplicate(lake_writer):
    lander = StreamLander(lake_writer, "test.queue")
    batch = [_delivery(_webhook("m1")), _delivery(_webhook("m2")), _delivery(_webhook("m1"))]
    first = lander.land(batch)
    assert (first.received, first.landed, first.duplicates, first.quarantined) == (3, 2, 1, 0)
    again = lander.land([_delivery(_webhook("m1"), redelivered=True), _delivery(_webhook("m3"))])
    assert (again.landed, again.duplicates, again.redelivered) == (1, 1, 1)
    rows = lake_writer.execute(
        "select event_id, event_code, _published_at from raw.carrier_events_stream order by 1"
    ).fetchall()
    assert [r[0] for r in rows] == ["m1", "m2", "m3"]
    assert rows[0][1] == "IN_TRANSIT" and rows[0][2] == NOW
    batches = lake_writer.execute(
        "select received, landed, duplicates from ops.stream_batches order by committed_at"
    ).fetchall()
    assert batches == [(3, 2, 1), (2, 1, 1)]


def test_malformed_messages_are_rejected_with_their_reason_and_quarantined_once(lake_writer):
    lander = StreamLander(lake_writer, "test.queue")
    bad_json = _delivery(b'{"msg_id": "x", "checkpoint": ')
    not_utf8 = _delivery(b"\xff\xfe{}")
    no_carrier = Delivery(_webhook("m9"), None, "parcel_webhook_json", NOW)
    bad_time = _delivery(_webhook("m8").replace(b"2026-09-01T10:00:00+02:00", b"yesterday"))
    short_rail = _delivery(b"ABC;AN;DEHAM", "transalprail", "rail_csv")
    good_rail = _delivery(
        b"TR-1;AB;DEHAM;Hamburg;01.09.2026 08:15;IC 2021;", "transalprail", "rail_csv"
    )
    result = lander.land([bad_json, not_utf8, no_carrier, bad_time, short_rail, good_rail])
    reasons = {r.delivery.body: r.reasons[0] for r in result.rejected}
    assert reasons[bad_json.body].startswith("invalid JSON")
    assert reasons[not_utf8.body].startswith("not valid UTF-8")
    assert "carrier_id" in reasons[no_carrier.body]
    assert reasons[bad_time.body].startswith("event_ts")
    assert "expected 7" in reasons[short_rail.body]
    assert result.landed == 1 and result.quarantined == 5
    rail = lake_writer.execute(
        "select event_id, event_code, event_ts from raw.carrier_events_stream"
    ).fetchone()
    assert rail[0].startswith("transalprail-") and rail[1] == "DEPARTED"
    assert rail[2] == datetime(2026, 9, 1, 6, 15, tzinfo=UTC)  # Hamburg summer time -> UTC
    # a redelivered bad message is not quarantined twice
    assert lander.land([bad_json]).quarantined == 0
    stored = lake_writer.execute(
        "select count(*), count(distinct source_file) from quarantine.rejected_records "
        "where dataset = 'carrier_events'"
    ).fetchone()
    assert stored == (5, 5)


def test_the_staging_view_unions_batch_and_stream(lake_writer):
    StreamLander(lake_writer, "q").land([_delivery(_webhook("s1"))])
    cols = {
        r[0]
        for r in lake_writer.execute(
            "select column_name from information_schema.columns "
            "where table_schema = 'raw' and table_name = 'carrier_events_stream'"
        ).fetchall()
    }
    assert {"event_id", "event_ts", "_published_at", "_ingested_at", "_partition_key"} <= cols
    # the batch table exists beside it, so dbt's union has both sources
    assert lake.table_exists(lake_writer, "raw", "carrier_events")


# ------------------------------------------------------------------------------ broker


@pytest.fixture
def topology() -> Iterator[Topology]:
    with fresh_topology() as topo:
        yield topo


@pytest.fixture(scope="module")
def small_landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("stream_world") / "landing"
    simulate(out, orders=400, days=4, seed=3, dirty_rate=0.02)
    return out


def _dead_letters(topology: Topology) -> list[tuple[bytes, dict]]:
    connection = connect()
    channel = connection.channel()
    out = []
    while True:
        method, props, body = channel.basic_get(topology.dead_queue, auto_ack=True)
        if method is None:
            break
        out.append((body, props.headers))
    connection.close()
    return out


def _stream_keys(con) -> list[tuple[str, str]]:
    return con.execute("select carrier_id, event_id from raw.carrier_events_stream").fetchall()


@pytest.mark.service
def test_publish_and_consume_store_every_event_once(lake_home, topology, small_landing):
    messages = read_messages(small_landing, *landed_days(small_landing)[-2:])
    stats = publish(messages, topology)
    assert stats.published == len(messages) > 500
    consumer = StreamConsumer(topology, batch_size=300, max_wait=0.3)
    result = consumer.run(idle_timeout=3.0)
    assert result.received == len(messages)
    con = lake.connect(read_only=True)
    keys = _stream_keys(con)
    assert len(keys) == len(set(keys)) == result.landed
    assert result.landed + result.duplicates + result.dead_lettered == len(messages)
    # the re-sent events of the feed were recognised, not stored twice
    assert result.duplicates > 0
    dead = _dead_letters(topology)
    assert len(dead) == result.dead_lettered > 0
    assert all(h.get("x-reason") for _, h in dead)
    quarantined = con.execute(
        "select count(*) from quarantine.rejected_records where dataset = 'carrier_events'"
    ).fetchone()[0]
    assert quarantined == len({body for body, _ in dead})
    con.close()


@pytest.mark.service
def test_a_dropped_broker_connection_loses_and_duplicates_nothing(
    lake_home, topology, small_landing, monkeypatch
):
    from ordertower.settings import get_settings

    url = pika.URLParameters(get_settings().broker_url)
    proxy = Proxy((url.host, url.port))
    proxied = (
        f"amqp://{url.credentials.username}:{url.credentials.password}@127.0.0.1:{proxy.port}/%2F"
    )
    messages = read_messages(small_landing)
    publish(messages, topology)
    consumer = StreamConsumer(topology, url=proxied, batch_size=200, max_wait=0.2)
    cuts = []

    def cut_when_busy() -> None:
        # cut twice while the consumer is mid-stream
        for _ in range(2):
            while consumer.stats.batches < 2 + 3 * len(cuts) and not consumer.stop_event.is_set():
                threading.Event().wait(0.05)
            proxy.cut()
            cuts.append(consumer.stats.batches)

    cutter = threading.Thread(target=cut_when_busy, daemon=True)
    cutter.start()
    try:
        result = consumer.run(idle_timeout=4.0)
    finally:
        proxy.close()
    assert len(cuts) == 2 and result.reconnects >= 2
    con = lake.connect(read_only=True)
    keys = _stream_keys(con)
    distinct_events = set(keys)
    assert len(keys) == len(distinct_events)  # nothing stored twice despite redeliveries
    con.close()
    # nothing lost: a clean consumer of the same messages stores exactly the same events
    check = Topology(f"{topology.prefix}-check")
    connection = connect()
    check.declare(connection.channel())
    connection.close()
    try:
        publish(messages, check)
        monkeypatch.setenv("ORDERTOWER_HOME", str(lake_home / "second"))
        clean = StreamConsumer(check, batch_size=500)
        clean.run(idle_timeout=3.0)
        con = lake.connect(read_only=True)
        assert set(_stream_keys(con)) == distinct_events
        con.close()
    finally:
        connection = connect()
        check.delete(connection.channel())
        connection.close()


# ------------------------------------------------------------------------------ hostile input


def _dcsa_event(event_id: str, when: str, classifier: str = "ACT") -> bytes:
    return json.dumps(
        {
            "eventID": event_id,
            "eventType": "TRANSPORT",
            "eventClassifierCode": classifier,
            "eventDateTime": when,
            "transportEventTypeCode": "ARRI",
            "transportCall": {"UNLocationCode": "DEHAM", "modeOfTransport": "VESSEL"},
            "documentReferences": [
                {"documentReferenceType": "BKG", "documentReferenceValue": "B1"}
            ],
        }
    ).encode()


def test_event_times_are_bounded_by_their_receipt(lake_writer):
    from datetime import timedelta

    def at(delta: timedelta) -> str:
        return (NOW + delta).isoformat()

    def webhook_at(msg_id: str, when: str) -> bytes:
        return _webhook(msg_id).replace(b"2026-09-01T10:00:00+02:00", when.encode())

    lander = StreamLander(lake_writer, "test.queue")
    skewed = _delivery(webhook_at("skew", at(timedelta(minutes=50))))  # within the hour
    ahead = _delivery(webhook_at("ahead", at(timedelta(hours=2))))
    ancient = _delivery(webhook_at("ancient", at(-timedelta(days=4000))))
    forecast = Delivery(
        _dcsa_event("est", at(timedelta(days=30)), "EST"), "bluewave", "dcsa_tnt_json", NOW
    )
    actual_ahead = Delivery(
        _dcsa_event("act", at(timedelta(days=30))), "bluewave", "dcsa_tnt_json", NOW
    )
    # a publisher whose clock runs a day ahead gains nothing: the receipt is never later than
    # when the consumer took the message
    later = datetime.now(UTC) + timedelta(days=1)
    clock_ahead = Delivery(
        webhook_at("clock", later.isoformat()), "swiftparcel", "parcel_webhook_json", later
    )
    result = lander.land([skewed, ahead, ancient, forecast, actual_ahead, clock_ahead])
    reasons = {r.delivery.body: r.reasons for r in result.rejected}
    assert set(reasons) == {ahead.body, ancient.body, actual_ahead.body, clock_ahead.body}
    assert "is more than 1 h after its receipt" in reasons[ahead.body][0]
    assert "is more than 3650 days before its receipt" in reasons[ancient.body][0]
    assert "after its receipt" in reasons[actual_ahead.body][0]
    assert "after its receipt" in reasons[clock_ahead.body][0]
    stored = {
        r[0]
        for r in lake_writer.execute("select event_id from raw.carrier_events_stream").fetchall()
    }
    assert stored == {"skew", "est"}
    rules = lake_writer.execute(
        "select distinct unnest(rules) from quarantine.rejected_records"
    ).fetchall()
    assert any("after its receipt" in r[0] for r in rules)


def test_a_message_that_breaks_the_normaliser_is_rejected_alone(lake_writer, monkeypatch):
    from pipelines.ingest import carriers

    real = carriers.NORMALISERS["parcel_webhook_json"]

    def fragile(record, carrier_id, codes):
        if record.get("msg_id") == "poison":
            raise KeyError("a bug met an odd record")
        return real(record, carrier_id, codes)

    monkeypatch.setitem(carriers.NORMALISERS, "parcel_webhook_json", fragile)
    result = StreamLander(lake_writer, "q").land(
        [_delivery(_webhook("a1")), _delivery(_webhook("poison")), _delivery(_webhook("a2"))]
    )
    assert result.landed == 2 and len(result.rejected) == 1
    assert "could not be normalised (KeyError" in result.rejected[0].reasons[0]


@pytest.mark.service
def test_a_full_queue_dead_letters_its_overflow():
    import time
    import uuid

    from broker_support import require_broker

    require_broker()
    topology = Topology(f"ot-test-{uuid.uuid4().hex[:10]}", max_length=3)
    connection = connect()
    try:
        channel = connection.channel()
        topology.declare(channel)
        for i in range(5):
            channel.basic_publish(topology.exchange, "parcel_webhook_json.x", _webhook(f"o{i}"))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            lake_depth = channel.queue_declare(topology.queue, passive=True).method.message_count
            dead = channel.queue_declare(topology.dead_queue, passive=True).method.message_count
            if lake_depth + dead == 5:
                break
            time.sleep(0.1)
        assert (lake_depth, dead) == (3, 2)  # nothing dropped: the overflow is dead-lettered
        method, props, _ = channel.basic_get(topology.dead_queue, auto_ack=True)
        assert props.headers["x-death"][0]["reason"] == "maxlen"
    finally:
        topology.delete(connection.channel())
        connection.close()


@pytest.mark.service
def test_a_queue_of_an_older_version_is_refused_with_advice_then_migrated_without_loss():
    import uuid

    from broker_support import require_broker

    from pipelines.stream.broker import TopologyMismatch, migrate_queue

    require_broker()
    topology = Topology(f"ot-test-{uuid.uuid4().hex[:10]}")
    connection = connect()
    try:
        channel = connection.channel()
        channel.exchange_declare(topology.exchange, exchange_type="topic", durable=True)
        # the queue as the previous version declared it: no length limit
        channel.queue_declare(
            topology.queue, durable=True, arguments={"x-single-active-consumer": True}
        )
        channel.queue_bind(topology.queue, topology.exchange, routing_key="#")
        channel.confirm_delivery()
        for i in range(4):
            channel.basic_publish(topology.exchange, "parcel_webhook_json.x", _webhook(f"m{i}"))
        with pytest.raises(TopologyMismatch, match="ordertower stream --migrate-queue"):
            topology.declare(connection.channel())
        assert migrate_queue(topology) == 4
        channel = connection.channel()
        topology.declare(channel)  # the queue now has this version's arguments
        assert channel.queue_declare(topology.queue, passive=True).method.message_count == 4
        assert migrate_queue(topology) == 0  # nothing left to do
    finally:
        topology.delete(connection.channel())
        connection.close()
