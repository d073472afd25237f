"""``ordertower stream``: consume live carrier events, store them, then acknowledge.

The loop collects deliveries until ``batch_size`` messages or ``max_wait`` seconds, lands them
in one lake transaction (:class:`pipelines.stream.land.StreamLander`), publishes the rejected
ones to the dead-letter exchange with their reason (``x-reason``, ``x-reasons``), and only then
acknowledges everything up to the batch's last delivery tag. A crash anywhere before the ack
means the broker redelivers the batch; the lake skips the events it already has, so the end
result is every event stored exactly once (at-least-once delivery, idempotent store).

A dropped broker connection is re-opened with back-off; neither loses a message. Lake errors
are classified (:mod:`pipelines.stream.health`): a transient one (the catalog locked by another
writer, a commit conflict) is retried on a fresh connection with capped back-off, within a
budget (:class:`~pipelines.stream.health.RetryPolicy`); a permanent one (disk full, I/O error,
corrupt file, schema mismatch) or one that outlives the budget **dead-letters the whole batch**
(``x-reason`` names the failure, ``x-failure-kind`` its kind, so the messages can be re-published
after the fix: :func:`requeue_lake_failures`), acknowledges it, records the failure in
``ops.stream_failures`` (or, when the lake cannot take it, in
``$ORDERTOWER_HOME/ops/stream_failures.jsonl``) and **stops** (``ordertower stream`` exits 3): one
batch in the dead-letter queue, not the whole queue, and a supervisor restarts it. The consume
loop beats a heartbeat (:class:`~pipelines.stream.health.Heartbeat`) that the Dagster sensor
``stream_consumer_health`` watches. SIGTERM / SIGINT finish the batch in hand and stop.
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import duckdb
import pika

from ordertower import lake as lake_mod
from ordertower.redact import redact
from pipelines.stream import health
from pipelines.stream.broker import BrokerError, Topology, connect, routing_key
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
    #: the permanent lake failure that stopped the consumer ("kind: detail"), if any
    failure: str = ""
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


class _StopRequested(Exception):
    """A stop was asked for while a lake operation waited to be retried."""


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
        retry: health.RetryPolicy | None = None,
        heartbeat: health.Heartbeat | None = None,
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
        #: how long a transient or unknown lake error is retried before it is permanent
        self.retry = retry or health.RetryPolicy()
        self.heartbeat = heartbeat or health.Heartbeat(self.topology.queue)
        #: set when a permanent lake failure stopped the consumer
        self.failure: health.LakeFailure | None = None

    # ------------------------------------------------------------------------------ lake

    def _lake(self) -> StreamLander:
        if self._lander is None:
            # micro-batches stay inlined in the catalog until compaction
            self._con = lake_mod.connect(inline_rows=max(2 * self.batch_size, 1000))
            ensure_stream_tables(self._con)
            hooks = self.make_hooks(self._con) if self.make_hooks else []
            self._lander = StreamLander(self._con, self.topology.queue, hooks)
        return self._lander

    def _with_retry(self, operation: Callable[[], object], stage: str):
        """Run a lake operation under the lake lock; retry transient and unknown errors with
        capped back-off within :attr:`retry`; raise :class:`health.LakeFailure` when the error
        is permanent or the budget is spent."""
        first_failure: float | None = None
        attempt = 0
        while True:
            attempt += 1
            try:
                with self.lake_lock:
                    return operation()
            except Exception as exc:  # noqa: BLE001
                # any Exception: a bug in a hook must not crash-loop the consumer on redelivery
                if stage == "open" and not isinstance(
                    exc, duckdb.Error | lake_mod.LakeError | OSError
                ):
                    raise  # a configuration error at start (rules, templates): fail at once
                classified = health.classify(exc)
                self.close_lake()
                now = time.monotonic()
                first_failure = first_failure or now
                delay = self.retry.delay(attempt)
                spent = self.retry.spent(classified.kind, attempt, now - first_failure, delay)
                if not classified.retryable or spent:
                    detail = health.short(exc)
                    if classified.retryable:  # out of budget: say what kept failing
                        detail = f"{classified.kind}: {detail}"
                        classified = health.Classified(health.PERMANENT, "retry_budget_exhausted")
                    raise health.LakeFailure(classified, detail, attempt, stage) from exc
                self.stats.lake_retries += 1
                log.warning(
                    "lake %s failed (%s, %s); retry %d in %.1fs",
                    stage,
                    classified.kind,
                    health.short(exc),
                    attempt,
                    delay,
                )
                self._beat("retrying")
                if self.stop_event.wait(delay):
                    raise _StopRequested from exc
                self._beat("running")

    def _land(self, deliveries: list[Delivery]) -> BatchResult:
        return self._with_retry(lambda: self._lake().land(deliveries), "land")

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
        try:
            result = self._land(deliveries)
        except health.LakeFailure as failure:
            self._fail_batch(channel, pending, failure)
            raise
        self.heartbeat.batch_committed()
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
        self._beat("running")
        log.info(
            "batch %s: %d received, %d landed, %d duplicates, %d dead-lettered, %d alerts",
            result.batch_id[:8],
            result.received,
            result.landed,
            result.duplicates,
            dead,
            result.alerts,
        )

    def _fail_batch(
        self, channel, pending: list[tuple[int, Delivery]], failure: health.LakeFailure
    ) -> None:
        """A permanent lake failure: record it, dead-letter every message of the batch with the
        failure as its reason, acknowledge them, and stop (the caller re-raises)."""
        batch_id = uuid.uuid4().hex
        log.error(
            "permanent lake failure (%s) on a batch of %d messages: dead-lettering it and "
            "stopping: %s",
            failure.kind,
            len(pending),
            failure.detail,
        )
        # recorded first: a crash before the ack redelivers the batch, and a record too many is
        # better than a failure nobody sees
        where = self._record_failure(failure, batch_id, len(pending))
        for _, d in pending:
            headers = {
                "x-reason": failure.reason,
                "x-reasons": json.dumps([failure.reason])[:4000],
                "x-failure-class": failure.classified.failure_class,
                "x-failure-kind": failure.kind,
                "x-failure-stage": failure.stage,
                "carrier_id": d.carrier_id or "",
                "feed_format": d.feed_format or "",
                "x-batch-id": batch_id,
            }
            if d.published_at is not None:
                headers["published_at_us"] = int(d.published_at.timestamp() * 1e6)
            channel.basic_publish(
                self.topology.dead_exchange,
                "",
                d.body,
                pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent, headers=headers),
            )
        channel.basic_ack(delivery_tag=pending[-1][0], multiple=True)
        self._failed(failure)
        self.stats.received += len(pending)
        self.stats.dead_lettered += len(pending)
        log.error(
            "batch %s: %d messages dead-lettered (%s); failure recorded in %s",
            batch_id[:8],
            len(pending),
            failure.kind,
            where,
        )

    def _failed(self, failure: health.LakeFailure) -> None:
        self.failure = failure
        self.stats.failure = str(failure)[:500]

    def _record_failure(self, failure: health.LakeFailure, batch_id: str | None, n: int) -> str:
        with self.lake_lock:  # one lake writer at a time in this process (the CRM sender)
            return self._record_failure_locked(failure, batch_id, n)

    def _record_failure_locked(
        self, failure: health.LakeFailure, batch_id: str | None, n: int
    ) -> str:
        where = health.record_failure(
            {
                "failure_id": uuid.uuid4().hex,
                "failed_at": datetime.now(UTC),
                "consumer_id": self.heartbeat.consumer_id,
                "host": self.heartbeat.host,
                "pid": self.heartbeat.pid,
                "queue": self.topology.queue,
                "stage": failure.stage,
                "batch_id": batch_id,
                "messages": n,
                "failure_class": failure.classified.failure_class,
                "kind": failure.kind,
                "attempts": failure.attempts,
                "message": failure.detail,
            }
        )
        return where

    def _compact(self) -> None:
        try:
            with self.lake_lock:
                compact(self._lake().con)
            self.heartbeat.last_compact_at = datetime.now(UTC)
        except (duckdb.Error, lake_mod.LakeError) as exc:
            # compaction is housekeeping: the batches stay safely inlined in the catalog, so the
            # stream goes on; a permanent failure (a full data path) is recorded and surfaces
            classified = health.classify(exc)
            log.warning("compaction skipped (%s): %s", classified.kind, health.short(exc))
            self.close_lake()
            if not classified.retryable:
                failure = health.LakeFailure(classified, health.short(exc), 1, "compact")
                self._record_failure(failure, None, 0)

    # ------------------------------------------------------------------------------ health

    def _beat(self, state: str | None = None, force: bool = False) -> None:
        hb = self.heartbeat
        if state is not None and state != hb.state:
            hb.state, force = state, True
        if not (force or hb.file_due()):
            return
        hb.counts = self.stats.as_dict()
        hb.beat_file(force=force)

    def _beat_lake(self) -> None:
        """The heartbeat row in the lake (best effort: a lake that fails here fails the next
        batch, which is classified there)."""
        try:
            with self.lake_lock:
                self.heartbeat.counts = self.stats.as_dict()
                self.heartbeat.beat_lake(self._lake().con)
        except (duckdb.Error, lake_mod.LakeError, OSError) as exc:
            log.warning("heartbeat not written to the lake: %s", health.short(exc))
            self.heartbeat.lake_skipped()  # try again at the next interval, not at once
            self.close_lake()

    def run(
        self, idle_timeout: float | None = None, max_messages: int | None = None
    ) -> ConsumerStats:
        """Consume until stopped (signal, :attr:`stop_event`), ``idle_timeout`` seconds without a
        message, ``max_messages`` received, or a permanent lake failure (:attr:`failure` is then
        set, and ``stats.failure`` names it)."""
        delay = 0.5
        health.prune_heartbeat_files(self.heartbeat.settings)
        self._beat("starting")
        # open the lake and build the hooks (ETA model, rules, network) before taking messages,
        # so the first batch does not pay for the start-up (and a bad lake fails at once)
        try:
            self._with_retry(self._lake, "open")
        except health.LakeFailure as failure:
            log.error("cannot open the lake (%s): %s", failure.kind, failure.detail)
            self._record_failure(failure, None, 0)
            self._failed(failure)
            self._beat("failed")
            return self.stats
        self.heartbeat.state = "running"
        self._beat_lake()
        self._beat(force=True)
        last_message = time.monotonic()
        while not self.stop_event.is_set():
            try:
                connection = connect(self.url)
            except BrokerError as exc:
                log.warning("%s; retrying in %.1fs", exc, delay)
                self.stats.reconnects += 1
                self._beat()
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
                        self.heartbeat.last_message_at = datetime.now(UTC)
                    full = len(pending) >= self.batch_size
                    due = pending and now - batch_started >= self.max_wait
                    stopping = self.stop_event.is_set()
                    if pending and (full or due or stopping):
                        self._flush(channel, pending)
                        pending = []
                    elif not pending:
                        self._beat()
                        if self.heartbeat.lake_due():
                            self._beat_lake()
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
            except (health.LakeFailure, _StopRequested):
                # a failed batch is dead-lettered and acknowledged: stop, do not take the next
                # one; a stop during a retry leaves the batch unacknowledged (redelivered)
                self.stop_event.set()
                with contextlib.suppress(Exception):
                    connection.close()
                break
            except (pika.exceptions.AMQPError, OSError) as exc:
                # unacknowledged deliveries return to the queue; the lake dedupes the replay
                self.stats.reconnects += 1
                log.warning("broker connection lost (%s); reconnecting", redact(repr(exc)))
                try:
                    if connection.is_open:
                        connection.close()
                except Exception:  # noqa: BLE001 - the connection is already broken
                    pass
                self._beat()
                if self.stop_event.wait(delay):
                    break
        if self.failure is not None:
            self._beat("failed")
            self._beat_lake()
            self.close_lake()
            return self.stats
        if self.stats.batches and self._lander is not None:
            self._compact()
        self._beat("stopped")
        self._beat_lake()
        self.close_lake()
        return self.stats

    def install_signal_handlers(self) -> None:
        def handler(signum, frame):  # noqa: ARG001
            log.info("signal %s: finishing the batch in hand", signum)
            self.stop_event.set()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)


def requeue_lake_failures(
    topology: Topology | None = None, url: str | None = None, kind: str | None = None
) -> int:
    """Re-publish the messages a permanent lake failure dead-lettered (after the fix: space
    freed, the file restored), to the live exchange with their carrier headers; messages that
    were dead-lettered for their own content (bad JSON, the contract) stay where they are.
    ``kind``: only failures of this kind. Returns how many were re-published."""
    topology = topology or Topology.from_env()
    connection = connect(url)
    moved = 0
    try:
        channel = connection.channel()
        topology.declare(channel)
        channel.confirm_delivery()
        waiting = channel.queue_declare(topology.dead_queue, passive=True).method.message_count
        # take every message without acknowledging it; the ones left alone return to the queue
        # when the channel closes, so each message is looked at once
        for _ in range(waiting):
            method, props, body = channel.basic_get(topology.dead_queue, auto_ack=False)
            if method is None:
                break
            headers = dict(props.headers or {})
            stage = _header(headers, "x-failure-stage")
            if stage is None or (kind is not None and _header(headers, "x-failure-kind") != kind):
                continue
            carrier = _header(headers, "carrier_id") or ""
            feed = _header(headers, "feed_format") or ""
            keep = {k: v for k, v in headers.items() if not str(k).startswith("x-")}
            channel.basic_publish(
                topology.exchange,
                routing_key(feed, carrier),
                body,
                pika.BasicProperties(
                    delivery_mode=pika.DeliveryMode.Persistent,
                    content_type=props.content_type,
                    headers=keep,
                ),
            )
            channel.basic_ack(method.delivery_tag)
            moved += 1
        channel.close()
    finally:
        if connection.is_open:
            connection.close()
    return moved
