"""Fault: everything at once for a long while (the soak).

Covers item 7's last fault: ``ordertower stream`` consumes carrier events that a publisher sends
at a steady rate to a real RabbitMQ (a fresh topology), while ``ordertower materialize``
rebuilds the tracking marts again and again and a headless Chromium, signed in, cycles through
every dashboard page of a live Streamlit server. For ``ORDERTOWER_SOAK_SECONDS`` (default 60:
long enough for several materialisations and page cycles beside the stream; ``make soak`` runs
it for an hour). At the end:

* 0 events lost: every published message was received and is landed, a duplicate, or
  dead-lettered (the dead-letter queue holds exactly the quarantined ones), and the events
  stored are exactly the valid distinct events batch ingestion landed from the same files;
* 0 duplicated: each ``(carrier_id, event_id)`` is stored once;
* 0 duplicate customer messages: one outbox message per alert, each received by the CRM once;
* 0 page errors: no exception, error box or JavaScript error on any page render;
* every materialisation succeeded.

Written against the public interfaces only (CLI commands, lake tables, the broker's queues).
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.broker_support import fresh_topology, require_broker
from tests.fault_world import ORDERTOWER, at_home, clean_world, copy_world, world_env

pytestmark = [pytest.mark.slow, pytest.mark.service]

SECONDS = float(os.environ.get("ORDERTOWER_SOAK_SECONDS") or 60)
#: The marts the stream feeds, rebuilt while it runs (what the tracking automation refreshes).
TRACKING = (
    "key:marts/fct_tracking_events or key:marts/fct_order_timeline "
    "or key:marts/fct_order_exceptions or key:marts/fct_exception_alerts"
)


def _sql(home: Path, query: str) -> list[tuple]:
    from ordertower import lake

    with at_home(home):
        con = lake.connect(read_only=True)
    try:
        return con.execute(query).fetchall()
    finally:
        con.close()


def _received(home: Path) -> int:
    """Messages the stream has received in committed batches (0 before its first batch)."""
    try:
        return int(_sql(home, "select coalesce(sum(received), 0) from ops.stream_batches")[0][0])
    except Exception:  # the table does not exist yet, or the catalog is busy: not yet
        return 0


def _materialize_loop(home: Path, stop: threading.Event, codes: list[tuple[int, str]]) -> None:
    while not stop.is_set():
        done = subprocess.run(
            [ORDERTOWER, "materialize", "--select", TRACKING, "--no-dbt-tests"],
            env=world_env(home),
            capture_output=True,
            text=True,
            timeout=1200,
        )
        codes.append((done.returncode, done.stderr[-1500:]))
        stop.wait(5)


def _browse(url: str, stop: threading.Event, renders: list[str], errors: list[str]) -> None:
    from dashboards import probe

    try:
        with probe.browser() as page:
            p = probe.Probe(page, url, timeout_ms=180_000)
            probe.sign_in(page, url, "admin")
            while not stop.is_set():
                for name, path in probe.PAGES.items():
                    if stop.is_set():
                        break
                    p.open(path)
                    renders.append(name)
                    errors += [f"{name}: {e}" for e in p.errors()]
    except Exception as exc:  # the browser itself failed: say so in the test's failure
        errors.append(f"browser: {exc}")


def test_stream_materialize_and_dashboards_together(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    from dashboards import probe
    from pipelines.crm.receiver import CrmReceiver
    from pipelines.stream.broker import connect, queue_depth
    from pipelines.stream.publish import landed_days, publish, read_messages

    require_broker()
    home = tmp_path / "home"
    copy_world(clean_world(tmp_path_factory), home)  # the run's materialised fault world
    landing = home / "landing"
    days = landed_days(landing)[-3:]
    messages = read_messages(landing, days[0], days[-1])
    rate = max(5.0, len(messages) / (SECONDS * 0.8))  # spread over most of the soak

    with at_home(home), fresh_topology() as topo, CrmReceiver(tmp_path / "crm.db") as crm:
        env = world_env(home, ORDERTOWER_STREAM_PREFIX=topo.prefix, ORDERTOWER_CRM_URL=crm.url)
        stream_log = (tmp_path / "stream.log").open("w")
        stream = subprocess.Popen(
            [ORDERTOWER, "stream"],
            env=env,
            stdout=stream_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        stop = threading.Event()
        codes: list[tuple[int, str]] = []
        renders: list[str] = []
        page_errors: list[str] = []
        published: list[int] = []
        with probe.serve(env={"ORDERTOWER_HOME": str(home)}, log=tmp_path / "ui.log") as url:
            workers = [
                threading.Thread(target=_materialize_loop, args=(home, stop, codes)),
                threading.Thread(target=_browse, args=(url, stop, renders, page_errors)),
            ]
            for w in workers:
                w.start()
            started = time.monotonic()
            stats = publish(messages, topology=topo, rate=rate)
            published.append(stats.published)
            stop.wait(max(0.0, SECONDS - (time.monotonic() - started)))
            stop.set()
            for w in workers:
                w.join(timeout=1800)
        # the stream drains the queue, then stops on SIGTERM (and drains the CRM outbox).
        # Drained means every published message is in a committed batch: the queue's depth
        # counts only messages not yet delivered, and a stream waiting out a held catalog
        # holds a prefetched batch unacknowledged (it would go back to the queue on SIGTERM)
        deadline = time.monotonic() + 600
        channel = connect().channel()
        while time.monotonic() < deadline and (
            queue_depth(channel, topo.queue) or _received(home) < published[0]
        ):
            time.sleep(1)
        time.sleep(3)
        os.killpg(stream.pid, signal.SIGTERM)
        assert stream.wait(timeout=300) == 0, (tmp_path / "stream.log").read_text()[-3000:]
        dead = queue_depth(channel, topo.dead_queue)
        channel.connection.close()
        received_by_crm = crm.messages()

    assert renders and not page_errors, page_errors[:10] or "no page was rendered"
    assert codes and all(code == 0 for code, _ in codes), [e for c, e in codes if c][:2]

    ((received, landed, duplicates, quarantined),) = _sql(
        home,
        "select sum(received), sum(landed), sum(duplicates), sum(quarantined) "
        "from ops.stream_batches",
    )
    stored = _sql(home, "select carrier_id, event_id from raw.carrier_events_stream")
    assert received == published[0] == len(messages), "a published message was not received"
    assert received == landed + duplicates + quarantined
    assert dead == quarantined, "a rejected message was not dead-lettered"
    assert len(stored) == len(set(stored)) == landed, "an event was stored twice"
    day_keys = ", ".join(f"'{d.isoformat()}'" for d in days)
    batch = _sql(
        home,
        "select distinct carrier_id, event_id from raw.carrier_events "
        f"where _partition_key in ({day_keys})",
    )
    assert set(stored) == set(batch), "the stream did not store the valid events the files hold"

    alerts = _sql(home, "select alert_id from ops.exception_alerts where customer_id is not null")
    outbox = _sql(home, "select message_id, alert_id, status from ops.crm_outbox")
    # at most one message per alert (the CRM policy sends one per order and incident, so
    # fewer messages than alerts), and only for an alert the stream raised
    assert len({a for _, a, _ in outbox}) == len(outbox), "an alert's message twice"
    assert {a for _, a, _ in outbox} <= {a for (a,) in alerts}, "a message without its alert"
    assert outbox, "no customer message at all"
    print(  # the soak's figures, for docs/reliability.md (pytest -rA shows them)
        f"soak {SECONDS:.0f} s: {published[0]} published, {landed} stored, {duplicates} "
        f"duplicates, {quarantined} dead-lettered; {len(alerts)} alerts, {len(outbox)} CRM "
        f"messages; {len(codes)} materialisations; {len(renders)} page renders, 0 errors"
    )
    keys = [m["idempotency_key"] for m in received_by_crm]
    assert len(keys) == len(set(keys)), "the CRM received a message twice"
    assert set(keys) == {m for m, _, status in outbox if status == "sent"}
