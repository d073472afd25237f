"""The live carrier-event topology on RabbitMQ (AMQP 0-9-1, via pika).

::

    carriers ──► exchange <prefix>.carrier_events (topic, durable)
                   │  routing key  <feed_format>.<carrier_id>
                   ▼
                 queue <prefix>.carrier_events.lake (durable, single active consumer,
                   │    at most ORDERTOWER_STREAM_MAX_LENGTH messages: overflow is dead-lettered)
                   │  ``ordertower stream``: normalise, validate, store, then ack
                   ▼ malformed / contract-rejected, with x-reason; overflow, with x-death
                 exchange <prefix>.carrier_events.dead (fanout) ──► queue <prefix>.carrier_events.dead

Messages are the carriers' own payloads (a webhook's JSON, a DCSA event's JSON, a rail CSV line),
persistent, with headers ``carrier_id``, ``feed_format`` and ``published_at_us`` (the publisher's
clock, for latency). The broker is ``ORDERTOWER_BROKER_URL`` (default
``amqp://guest:guest@127.0.0.1:5672/%2F``); the prefix ``ORDERTOWER_STREAM_PREFIX`` (default
``ordertower``) lets several environments or tests share one broker.

The lake queue is bounded (``x-max-length``, default 1,000,000 messages): when the consumer is
down for long, what no longer fits is dead-lettered (``x-overflow: reject-publish-dlx``, the
broker's ``x-death`` header says ``maxlen``), never dropped, and the publisher is told. A queue
declared by an older version without these arguments cannot be re-declared (the broker answers
PRECONDITION_FAILED); :func:`migrate_queue` (``ordertower stream --migrate-queue``) moves it over.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from urllib.parse import urlparse

import pika

from ordertower.redact import redact  # also re-exported: the one redaction helper
from ordertower.settings import get_settings

FEED_CONTENT_TYPES = {
    "parcel_webhook_json": "application/json",
    "dcsa_tnt_json": "application/json",
    "rail_csv": "text/csv",
}


class BrokerError(RuntimeError):
    """The broker cannot be reached or refused the topology."""


class TopologyMismatch(BrokerError):
    """A queue exists with other arguments than this version declares (PRECONDITION_FAILED)."""


@dataclass(frozen=True)
class Topology:
    prefix: str = "ordertower"
    #: most messages the lake queue holds (None: ``ORDERTOWER_STREAM_MAX_LENGTH``)
    max_length: int | None = None

    @property
    def exchange(self) -> str:
        return f"{self.prefix}.carrier_events"

    @property
    def queue(self) -> str:
        return f"{self.prefix}.carrier_events.lake"

    @property
    def dead_exchange(self) -> str:
        return f"{self.prefix}.carrier_events.dead"

    @property
    def dead_queue(self) -> str:
        return f"{self.prefix}.carrier_events.dead"

    @classmethod
    def from_env(cls) -> Topology:
        return cls(os.environ.get("ORDERTOWER_STREAM_PREFIX") or "ordertower")

    @property
    def holding_queue(self) -> str:
        """Where :func:`migrate_queue` keeps the messages while the lake queue is re-made."""
        return f"{self.prefix}.carrier_events.lake.migrating"

    def queue_arguments(self) -> dict[str, object]:
        return {
            "x-single-active-consumer": True,
            "x-max-length": int(self.max_length or get_settings().stream_max_length),
            "x-overflow": "reject-publish-dlx",
            "x-dead-letter-exchange": self.dead_exchange,
        }

    def declare(self, channel: pika.adapters.blocking_connection.BlockingChannel) -> None:
        """Idempotent: exchanges, queues and bindings (safe to call from every process).

        Raises :class:`TopologyMismatch` (the channel is closed then) when the lake queue exists
        with other arguments, saying what to do.
        """
        channel.exchange_declare(self.exchange, exchange_type="topic", durable=True)
        channel.exchange_declare(self.dead_exchange, exchange_type="fanout", durable=True)
        try:
            channel.queue_declare(self.queue, durable=True, arguments=self.queue_arguments())
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code != 406:
                raise
            raise TopologyMismatch(
                f"the broker refused to declare queue {self.queue!r}: it exists with other "
                f"arguments ({exc.reply_text}). It was most likely declared by an older "
                "version without the length limit (x-max-length, overflow to the dead-letter "
                "exchange). Run `ordertower stream --migrate-queue` once (it moves the waiting "
                "messages to a queue declared with the limits; no message is lost and "
                "publishers may keep running), then start `ordertower stream` again. "
                "To keep the old queue instead, set ORDERTOWER_STREAM_PREFIX to a new prefix."
            ) from exc
        channel.queue_bind(self.queue, self.exchange, routing_key="#")
        channel.queue_declare(self.dead_queue, durable=True)
        channel.queue_bind(self.dead_queue, self.dead_exchange)

    def delete(self, channel: pika.adapters.blocking_connection.BlockingChannel) -> None:
        """Remove everything :meth:`declare` made (tests clean up their own prefix)."""
        for queue in (self.queue, self.dead_queue, self.holding_queue):
            channel.queue_delete(queue)
        for exchange in (self.exchange, self.dead_exchange):
            channel.exchange_delete(exchange)


def routing_key(feed_format: str, carrier_id: str) -> str:
    return f"{feed_format}.{carrier_id}"


def parameters(url: str | None = None, heartbeat: int = 60) -> pika.URLParameters:
    params = pika.URLParameters(url or get_settings().broker_url)
    params.heartbeat = heartbeat
    params.blocked_connection_timeout = 300
    params.connection_attempts = 1
    params.socket_timeout = 5
    return params


def connect(url: str | None = None, heartbeat: int = 60) -> pika.BlockingConnection:
    url = url or get_settings().broker_url
    try:
        return pika.BlockingConnection(parameters(url, heartbeat))
    except pika.exceptions.AMQPError as exc:
        raise BrokerError(redact(f"cannot connect to the broker at {url}: {exc!r}")) from exc


def reachable(url: str | None = None, timeout: float = 1.0) -> bool:
    """True when something accepts TCP connections at the broker's host and port."""
    parsed = urlparse(url or get_settings().broker_url)
    try:
        with socket.create_connection(
            (parsed.hostname or "127.0.0.1", parsed.port or 5672), timeout
        ):
            return True
    except OSError:
        return False


def queue_depth(channel, queue: str) -> int:
    """Messages ready in ``queue`` (not counting those delivered and not yet acknowledged)."""
    return channel.queue_declare(queue, passive=True).method.message_count


def _exists(connection: pika.BlockingConnection, queue: str) -> bool:
    channel = connection.channel()
    try:
        channel.queue_declare(queue, passive=True)
    except pika.exceptions.ChannelClosedByBroker as exc:
        if exc.reply_code == 404:
            return False
        raise
    channel.close()
    return True


def _move(channel, source: str, target: str) -> int:
    """Every message of ``source`` into ``target`` (confirmed before it is acknowledged)."""
    moved = 0
    while True:
        method, props, body = channel.basic_get(source, auto_ack=False)
        if method is None:
            return moved
        channel.basic_publish("", target, body, props, mandatory=True)
        channel.basic_ack(method.delivery_tag)
        moved += 1


def migrate_queue(topology: Topology | None = None, url: str | None = None) -> int:
    """Re-make the lake queue with this version's arguments, keeping every message.

    The waiting messages go to a holding queue that is bound to the exchange first (so what
    publishers send meanwhile lands there too), the old queue is deleted and declared again
    with the limits, and the holding queue is emptied into it. Stop the consumers first
    (``ordertower stream``); publishers may keep running (an event published during the switch
    may arrive twice: the lake stores it once). Safe to run again after an interruption.
    Returns the number of messages moved into the new queue.
    """
    topology = topology or Topology.from_env()
    connection = connect(url)
    try:
        channel = connection.channel()
        channel.exchange_declare(topology.exchange, exchange_type="topic", durable=True)
        channel.exchange_declare(topology.dead_exchange, exchange_type="fanout", durable=True)
        try:
            topology.declare(connection.channel())
        except TopologyMismatch:
            old = channel.queue_declare(topology.queue, passive=True).method
            if old.consumer_count:
                raise BrokerError(
                    f"queue {topology.queue!r} has {old.consumer_count} consumer(s): stop "
                    "`ordertower stream` first, then migrate"
                ) from None
            channel.queue_declare(topology.holding_queue, durable=True)
            channel.queue_bind(topology.holding_queue, topology.exchange, routing_key="#")
            channel.queue_unbind(topology.queue, topology.exchange, routing_key="#")
            channel.confirm_delivery()
            _move(channel, topology.queue, topology.holding_queue)
            channel.queue_delete(topology.queue)
            topology.declare(channel)
        if not _exists(connection, topology.holding_queue):
            return 0
        channel = connection.channel()
        channel.confirm_delivery()
        channel.queue_unbind(topology.holding_queue, topology.exchange, routing_key="#")
        moved = _move(channel, topology.holding_queue, topology.queue)
        channel.queue_delete(topology.holding_queue, if_empty=True)
        return moved
    finally:
        if connection.is_open:
            connection.close()
