"""``ordertower stream``: consume live carrier events, store them, then acknowledge.

The loop collects deliveries until ``batch_size`` messages or ``max_wait`` seconds, lands them
in one lake transaction (:class:`pipelines.stream.land.StreamLander`), publishes the rejected
ones to the dead-letter exchange with their reason (``x-reason``, ``x-reasons``), and only then
acknowledges everything up to the batch's last delivery tag. A crash anywhere before the ack
means the broker redelivers the batch; the lake skips the events it already has, so the end
result is every event stored exactly once (at-least-once delivery, idempotent store).

A dropped broker connection is re-opened with back-off; a lake that is briefly locked (another
writer committing) is retried with back-off; neither loses a message. SIGTERM / SIGINT finish
the batch in hand and stop.
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import duckdb
import pika

from ordertower import lake as lake_mod
from ordertower.redact import redact
from pipelines.stream.broker import BrokerError, Topology, connect
from pipelines.stream.land import (
    BatchResult,
    Delivery,
    Hook,
    StreamLander,
    compact,
    ensure_stream_tables,
)

log = logging.getLogger("ordertower.stream")


@dataclass
class ConsumerStats:
    batches: int = 0
    received: int = 0
    landed: int = 0
    duplicates: int = 0
    quarantined: int = 0
    dead_lettered: int = 0
    alerts: int = 0
    messages: int = 0
    reconnects: int = 0
    lake_retries: int = 0
    started: float = field(default_factory=time.monotonic)

    def add(self, result: BatchResult, dead: int) -> None:
        self.batches += 1
        self.received += result.received
        self.landed += result.landed
        self.duplicates += result.duplicates
        self.quarantined += result.quarantined
        self.dead_lettered += dead
        self.alerts += result.alerts
        self.messages += result.messages

    def as_dict(self) -> dict:
        out = {k: v for k, v in self.__dict__.items() if k != "started"}
        out["seconds"] = round(time.monotonic() - self.started, 1)
        return out


def _published_at(headers: dict | None) -> datetime | None:
    value = (headers or {}).get("published_at_us")
    if isinstance(value, int):
        return datetime.fromtimestamp(value / 1e6, UTC)
    return None


def _header(headers: dict | None, name: str) -> str | None:
    value = (headers or {}).get(name)
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    return value if isinstance(value, str) and value else None


class StreamConsumer:
    def __init__(
        self,
        topology: Topology | None = None,
        url: str | None = None,
        batch_size: int = 5000,
        max_wait: float = 0.5,
        make_hooks: Callable[[duckdb.DuckDBPyConnection], list[Hook]] | None = None,
        compact_every: int = 200,
        compact_rows: int = 50_000,
        lake_lock: threading.Lock | None = None,
    ) -> None:
        self.topology = topology or Topology.from_env()
        self.url = url
        self.batch_size = batch_size
        self.max_wait = max_wait
        #: builds the live hooks on the consumer's lake connection (again after a reconnect)
        self.make_hooks = make_hooks
        #: flush the inlined micro-batches to Parquet every N batches or N landed rows
        self.compact_every = compact_every
        self.compact_rows = compact_rows
        self._since_compact = 0
        #: held around every lake operation of this process: two lake writers in one process
        #: must take turns (SQLite catalog locks are per process); the CRM sender thread shares it
        self.lake_lock = lake_lock or threading.Lock()
        self.stats = ConsumerStats()
        self.stop_event = threading.Event()
        #: set after each commit that put messages in the CRM outbox (wakes the sender)
        self.messages_committed = threading.Event()
        self._con: duckdb.DuckDBPyConnection | None = None
        self._lander: StreamLander | None = None

    # ------------------------------------------------------------------------------ lake

    def _lake(self) -> StreamLander:
        if self._lander is None:
            # micro-batches stay inlined in the catalog until compaction
            self._con = lake_mod.connect(inline_rows=max(2 * self.batch_size, 1000))
            ensure_stream_tables(self._con)
            hooks = self.make_hooks(self._con) if self.make_hooks else []
            self._lander = StreamLander(self._con, self.topology.queue, hooks)
        return self._lander

    def _land(self, deliveries: list[Delivery]) -> BatchResult:
        delay = 0.1
        while True:
            try:
                with self.lake_lock:
                    return self._lake().land(deliveries)
            except (duckdb.Error, lake_mod.LakeError) as exc:
                # a conflicting commit or a locked catalog: open again and retry the same batch
                self.stats.lake_retries += 1
                log.warning("lake write failed (%s); retrying in %.1fs", redact(exc), delay)
                self.close_lake()
                if self.stop_event.wait(delay):
                    raise
                delay = min(delay * 2, 10.0)

    def close_lake(self) -> None:
        with self.lake_lock:
            self._close_lake()

    def _close_lake(self) -> None:
        if self._con is not None:
            with contextlib.suppress(duckdb.Error):
                self._con.close()
        self._con, self._lander = None, None

    # ------------------------------------------------------------------------------ broker

    def _dead_letter(self, channel, result: BatchResult) -> int:
        for r in result.rejected:
            d = r.delivery
            channel.basic_publish(
                self.topology.dead_exchange,
                "",
                d.body,
                pika.BasicProperties(
                    delivery_mode=pika.DeliveryMode.Persistent,
                    headers={
                        "x-reason": r.reasons[0][:500],
                        "x-reasons": json.dumps(r.reasons)[:4000],
                        "carrier_id": d.carrier_id or "",
                        "feed_format": d.feed_format or "",
                        "x-batch-id": result.batch_id,
                    },
                ),
            )
        return len(result.rejected)

    def _flush(self, channel, pending: list[tuple[int, Delivery]]) -> None:
        deliveries = [d for _, d in pending]
        result = self._land(deliveries)
        if result.messages:
            self.messages_committed.set()
        dead = self._dead_letter(channel, result)
        channel.basic_ack(delivery_tag=pending[-1][0], multiple=True)
        self.stats.add(result, dead)
        self._since_compact += result.landed
        due = self.compact_every and self.stats.batches % self.compact_every == 0
        if due or self._since_compact >= self.compact_rows:
            self._compact()
            self._since_compact = 0
        log.info(
            "batch %s: %d received, %d landed, %d duplicates, %d dead-lettered, %d alerts",
            result.batch_id[:8],
            result.received,
            result.landed,
            result.duplicates,
            dead,
            result.alerts,
        )

    def _compact(self) -> None:
        try:
            with self.lake_lock:
                compact(self._lake().con)
        except duckdb.Error as exc:  # compaction is housekeeping: never stop the stream for it
            log.warning("compaction skipped: %s", redact(exc))

    def run(
        self, idle_timeout: float | None = None, max_messages: int | None = None
    ) -> ConsumerStats:
        """Consume until stopped (signal, :attr:`stop_event`), ``idle_timeout`` seconds without a
        message, or ``max_messages`` received."""
        delay = 0.5
        # open the lake and build the hooks (ETA model, rules, network) before taking messages,
        # so the first batch does not pay for the start-up (and a bad lake fails at once)
        with self.lake_lock:
            self._lake()
        last_message = time.monotonic()
        while not self.stop_event.is_set():
            try:
                connection = connect(self.url)
            except BrokerError as exc:
                log.warning("%s; retrying in %.1fs", exc, delay)
                self.stats.reconnects += 1
                if self.stop_event.wait(delay):
                    break
                delay = min(delay * 2, 15.0)
                continue
            delay = 0.5
            try:
                channel = connection.channel()
                self.topology.declare(channel)
                channel.confirm_delivery()  # dead letters are confirmed before the ack
                channel.basic_qos(prefetch_count=2 * self.batch_size)
                pending: list[tuple[int, Delivery]] = []
                batch_started = time.monotonic()
                for method, props, body in channel.consume(
                    self.topology.queue, inactivity_timeout=min(0.1, self.max_wait)
                ):
                    now = time.monotonic()
                    if method is not None:
                        if not pending:
                            batch_started = now
                        pending.append(
                            (
                                method.delivery_tag,
                                Delivery(
                                    body,
                                    _header(props.headers, "carrier_id"),
                                    _header(props.headers, "feed_format"),
                                    _published_at(props.headers),
                                    bool(method.redelivered),
                                ),
                            )
                        )
                        last_message = now
                    full = len(pending) >= self.batch_size
                    due = pending and now - batch_started >= self.max_wait
                    stopping = self.stop_event.is_set()
                    if pending and (full or due or stopping):
                        self._flush(channel, pending)
                        pending = []
                    if stopping:
                        break
                    if max_messages is not None and self.stats.received >= max_messages:
                        self.stop_event.set()
                        break
                    if idle_timeout is not None and now - last_message >= idle_timeout:
                        self.stop_event.set()
                        break
                channel.cancel()
                connection.close()
            except (pika.exceptions.AMQPError, OSError) as exc:
                # unacknowledged deliveries return to the queue; the lake dedupes the replay
                self.stats.reconnects += 1
                log.warning("broker connection lost (%s); reconnecting", redact(repr(exc)))
                try:
                    if connection.is_open:
                        connection.close()
                except Exception:  # noqa: BLE001 - the connection is already broken
                    pass
                if self.stop_event.wait(delay):
                    break
        if self.stats.batches and self._lander is not None:
            self._compact()
        self.close_lake()
        return self.stats

    def install_signal_handlers(self) -> None:
        def handler(signum, frame):  # noqa: ARG001
            log.info("signal %s: finishing the batch in hand", signum)
            self.stop_event.set()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)
