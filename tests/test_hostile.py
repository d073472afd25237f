"""The hostile corpus (tests/hostile_corpus.py) through batch ingestion and the live stream.

Neither path may crash or lose anything: every line or message lands, is quarantined
(dead-lettered) with its reason, or is counted as a duplicate; the counts balance; and every
valid record between the hostile ones is stored. The stream part runs against the real broker
(skips without one outside CI, fails under CI=true).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import hostile_corpus as hc
import landing_factory as lf
import pika
import pytest
from broker_support import fresh_topology

from ordertower.lake import connect
from ordertower.settings import get_settings
from pipelines.ingest.runner import ingest_source
from pipelines.ingest.sources import SOURCES_BY_NAME
from pipelines.stream.broker import connect as broker_connect
from pipelines.stream.broker import routing_key
from pipelines.stream.consumer import StreamConsumer

NOW = datetime.now(UTC)
DAY = (NOW - timedelta(days=3)).date()
VALID_BETWEEN = 2  # valid records before each hostile one (and after the last)


def _cases() -> list[hc.Case]:
    return hc.corpus(DAY, NOW, get_settings().max_record_bytes)


def test_the_corpus_has_at_least_30_kinds_for_each_path():
    cases = _cases()
    assert len({c.kind for c in cases if c.batch != hc.NOT_APPLICABLE}) >= 30
    assert len({c.kind for c in cases if c.stream != hc.NOT_APPLICABLE}) >= 30
    assert {c.batch for c in cases} >= {hc.LANDED, hc.QUARANTINED}
    assert {c.stream for c in cases} >= {hc.LANDED, hc.QUARANTINED, hc.DUPLICATE}


# ------------------------------------------------------------------------------ batch


def _interleave(feed: str, cases: list[hc.Case]) -> tuple[list[bytes], dict[str, int], int]:
    """The file's records: valid ones around every case; the line number of each case."""
    records: list[bytes] = []
    lines: dict[str, int] = {}
    line = 2 if feed == hc.RAIL else 1  # a CSV header is line 1
    valid = 0
    for case in cases:
        for body in hc.valid_records(feed, DAY, VALID_BETWEEN, start=valid):
            records.append(body)
            line += 1
        valid += VALID_BETWEEN
        lines[case.kind] = line
        records.append(case.body)
        line += case.batch_records
    records.extend(hc.valid_records(feed, DAY, VALID_BETWEEN, start=valid))
    return records, lines, valid + VALID_BETWEEN


def _write_landing(root: Path, cases: list[hc.Case]) -> dict:
    lf.reference(root)
    files = {
        hc.PARCEL: f"carriers/SWIFTPARCEL/date={DAY}/webhooks.jsonl",
        hc.DCSA: f"carriers/BLUEWAVE/date={DAY}/events.jsonl",
        hc.RAIL: f"carriers/EURORAIL/date={DAY}/events.csv",
        hc.ORDERS: f"oms/orders/date={DAY}/orders.jsonl",
    }
    layout = {}
    for feed, rel in files.items():
        mine = [c for c in cases if c.feed == feed and c.batch != hc.NOT_APPLICABLE]
        records, lines, valid = _interleave(feed, mine)
        head = (hc.RAIL_HEADER + "\n").encode() if feed == hc.RAIL else b""
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(head + b"\n".join(records) + b"\n")
        layout[feed] = {"file": rel, "lines": lines, "valid": valid, "cases": mine}
    # a carrier nobody registered, sending a format nobody knows
    ghost = root / f"carriers/GHOSTCARRIER/date={DAY}/feed.xml"
    ghost.parent.mkdir(parents=True, exist_ok=True)
    ghost.write_text("<event id='1'/>\n<event id='2'/>\n", encoding="utf-8")
    return layout


def _quarantine(con, dataset: str) -> dict[tuple[str, int], list[str]]:
    rows = con.execute(
        "select source_file, record_no, reasons from quarantine.rejected_records where dataset = ?",
        [dataset],
    ).fetchall()
    return {(f, n): list(r) for f, n, r in rows}


@pytest.mark.slow
def test_the_corpus_through_batch_ingestion(lake_home: Path):
    cases = _cases()
    root = lake_home / "landing"
    layout = _write_landing(root, cases)
    con = connect()
    try:
        results = {}
        for name in ("carriers", "orders", "carrier_events"):
            source = SOURCES_BY_NAME[name]
            keys = ["__all__"] if not source.partitioned else [DAY.isoformat()]
            # one worker: the corpus is small, and the test must not spawn processes
            results.update(ingest_source(source, keys, con, root, "run-hostile", workers=1))
    finally:
        con.close()
    for r in results.values():
        assert r.conserved, r.dataset  # received = landed + quarantined, per partition

    con = connect(read_only=True)
    try:
        # ---------------------------------------------------------------- carrier events
        events = results["carrier_events"]
        carrier_feeds = (hc.PARCEL, hc.DCSA, hc.RAIL)
        valid = sum(layout[f]["valid"] for f in carrier_feeds)
        mine = [c for f in carrier_feeds for c in layout[f]["cases"]]
        split = [c for c in mine if c.batch == hc.SPLIT]
        expect_landed = valid + len(split)
        expect_landed += sum(c.batch_records for c in mine if c.batch == hc.LANDED)
        expect_quarantined = 2 + sum(c.batch_records - 1 for c in split)  # 2: the ghost's lines
        expect_quarantined += sum(c.batch_records for c in mine if c.batch == hc.QUARANTINED)
        _check_reasons(con, "carrier_events", layout, carrier_feeds)
        assert (events.landed, events.quarantined) == (expect_landed, expect_quarantined)
        assert events.received == expect_landed + expect_quarantined
        stored = con.execute("select count(*) from raw.carrier_events").fetchone()[0]
        assert stored == expect_landed
        ghost = [
            r
            for (f, _), r in _quarantine(con, "carrier_events").items()
            if f.startswith("carriers/GHOSTCARRIER")
        ]
        assert len(ghost) == 2 and all("no known feed format" in r[0] for r in ghost)
        ids = {r[0] for r in con.execute("select event_id from raw.carrier_events").fetchall()}
        valid_ids = {f"h-{5000 + i:04d}" for i in range(layout[hc.PARCEL]["valid"])}
        valid_ids |= {f"hd-{5000 + i:04d}" for i in range(layout[hc.DCSA]["valid"])}
        assert valid_ids <= ids  # every valid record between the hostile ones landed
        refs = {r[0] for r in con.execute("select tracking_ref from raw.carrier_events").fetchall()}
        assert {f"ERH{5000 + i:04d}" for i in range(layout[hc.RAIL]["valid"])} <= refs
        # text that looks like SQL or HTML is data, stored as sent
        texts = {
            r[0]
            for r in con.execute("select carrier_status_text from raw.carrier_events").fetchall()
        }
        assert "x'); DROP TABLE raw.orders; --" in texts
        # ---------------------------------------------------------------- orders
        orders = results["orders"]
        mine = layout[hc.ORDERS]
        expect = mine["valid"] + sum(c.batch == hc.LANDED for c in mine["cases"])
        bad = sum(c.batch_records for c in mine["cases"] if c.batch == hc.QUARANTINED)
        _check_reasons(con, "orders", layout, (hc.ORDERS,))
        assert (orders.landed, orders.quarantined) == (expect, bad)
        assert con.execute("select count(*) from raw.orders").fetchone()[0] == expect
        lines = _quarantine(con, "order_lines")
        not_list = mine["lines"]["order_lines_not_list"]
        assert any("lines: is not a list" in r[0] for (_, n), r in lines.items() if n == not_list)
        # the parent quarantined with its reason: the oversize line is kept as a bounded prefix
        raw = con.execute(
            "select raw_record from quarantine.rejected_records where dataset = 'orders' "
            "and record_no = ?",
            [mine["lines"]["order_over_size_cap"]],
        ).fetchone()[0]
        assert len(raw) < 3000 and "sha256" in raw
    finally:
        con.close()


def _check_reasons(con, dataset: str, layout: dict, feeds) -> None:
    quarantined = _quarantine(con, dataset)
    problems = []
    for feed in feeds:
        info = layout[feed]
        for case in info["cases"]:
            line = info["lines"][case.kind]
            got = quarantined.get((info["file"], line))
            if case.batch == hc.QUARANTINED:
                if got is None:
                    problems.append(f"{case.kind}: not quarantined (line {line})")
                elif case.reason.lower() not in " | ".join(got).lower():
                    problems.append(f"{case.kind}: reasons {got} lack {case.reason!r}")
            elif case.batch == hc.LANDED and got is not None:
                problems.append(f"{case.kind}: quarantined {got}, expected to land")
            elif case.batch == hc.SPLIT:
                rest = quarantined.get((info["file"], line + 1))
                if got is not None or rest is None or case.reason not in rest[0]:
                    problems.append(f"{case.kind}: split as {got} / {rest}")
    assert not problems, "\n".join(problems)


# ------------------------------------------------------------------------------ stream


def _publish(topology, messages: list[tuple[hc.Case | None, bytes, str | None, str, bool]]):
    connection = broker_connect()
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        for _, body, carrier, feed, with_headers in messages:
            headers = (
                {
                    "carrier_id": carrier or "",
                    "feed_format": feed,
                    "published_at_us": int(NOW.timestamp() * 1e6),
                }
                if with_headers
                else {}
            )
            channel.basic_publish(
                topology.exchange,
                routing_key(feed or "unknown", carrier or "unknown"),
                body,
                pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent, headers=headers),
            )
    finally:
        connection.close()


def _drain(queue: str) -> list[tuple[bytes, dict]]:
    connection = broker_connect()
    out = []
    try:
        channel = connection.channel()
        while True:
            method, props, body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                return out
            out.append((body, props.headers or {}))
    finally:
        connection.close()


@pytest.mark.slow
@pytest.mark.service
def test_the_corpus_through_the_stream_on_the_real_broker(lake_home: Path):
    cases = [c for c in _cases() if c.stream != hc.NOT_APPLICABLE]
    messages = []
    valid_bodies: list[bytes] = []
    for i, case in enumerate(cases):
        feed = case.feed
        for body in hc.valid_records(feed, DAY, 1, start=i):
            messages.append((None, body, hc.CARRIER[feed], feed, True))
            valid_bodies.append(body)
        messages.append((case, case.body, case.stream_carrier, case.stream_feed, case.headers))
    with fresh_topology() as topology:
        _publish(topology, messages)
        consumer = StreamConsumer(topology, batch_size=40, max_wait=0.3)
        stats = consumer.run(idle_timeout=3.0)
        dead = _drain(topology.dead_queue)
    # nothing crashed, nothing lost: every message landed, was a duplicate or was dead-lettered
    assert stats.received == len(messages)
    assert stats.landed + stats.duplicates + stats.dead_lettered == stats.received
    expected_dead = [c for c in cases if c.stream == hc.QUARANTINED]
    assert stats.dead_lettered == len(dead) == len(expected_dead)
    assert stats.duplicates == sum(c.stream == hc.DUPLICATE for c in cases)
    assert stats.landed == len(valid_bodies) + sum(c.stream == hc.LANDED for c in cases)
    reasons = {body: json.loads(h.get("x-reasons") or "[]") for body, h in dead}
    problems = []
    for case in expected_dead:
        got = reasons.get(case.body)
        if got is None:
            problems.append(f"{case.kind}: not dead-lettered")
        elif case.live_reason.lower() not in " | ".join(got).lower():
            problems.append(f"{case.kind}: reasons {got} lack {case.live_reason!r}")
    assert not problems, "\n".join(problems)
    con = connect(read_only=True)
    try:
        stored = con.execute("select count(*) from raw.carrier_events_stream").fetchone()[0]
        assert stored == stats.landed
        ids = {
            r[0] for r in con.execute("select event_id from raw.carrier_events_stream").fetchall()
        }
        assert {f"h-{5000 + i:04d}" for i, c in enumerate(cases) if c.feed == hc.PARCEL} <= ids
        assert {f"hd-{5000 + i:04d}" for i, c in enumerate(cases) if c.feed == hc.DCSA} <= ids
        # every dead letter is in quarantine too (once per distinct body), oversize ones bounded
        quarantined = con.execute(
            "select count(*), max(length(raw_record)) from quarantine.rejected_records "
            "where dataset = 'carrier_events'"
        ).fetchone()
        assert quarantined[0] == len({c.body for c in expected_dead})
        assert quarantined[1] <= get_settings().max_record_bytes
    finally:
        con.close()


def test_day_is_in_the_past():
    # the corpus' partition lies before now, as landed files do
    assert date.today() > DAY
