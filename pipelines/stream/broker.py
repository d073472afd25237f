"""The live carrier-event topology on RabbitMQ (AMQP 0-9-1, via pika).

::

    carriers ──► exchange <prefix>.carrier_events (topic, durable)
                   │  routing key  <feed_format>.<carrier_id>
                   ▼
                 queue <prefix>.carrier_events.lake (durable, single active consumer)
                   │  ``ordertower stream``: normalise, validate, store, then ack
                   ▼ malformed / contract-rejected, with x-reason
                 exchange <prefix>.carrier_events.dead (fanout) ──► queue <prefix>.carrier_events.dead

Messages are the carriers' own payloads (a webhook's JSON, a DCSA event's JSON, a rail CSV line),
persistent, with headers ``carrier_id``, ``feed_format`` and ``published_at_us`` (the publisher's
clock, for latency). The broker is ``ORDERTOWER_BROKER_URL`` (default
``amqp://guest:guest@127.0.0.1:5672/%2F``); the prefix ``ORDERTOWER_STREAM_PREFIX`` (default
``ordertower``) lets several environments or tests share one broker.
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


@dataclass(frozen=True)
class Topology:
    prefix: str = "ordertower"

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

    def declare(self, channel: pika.adapters.blocking_connection.BlockingChannel) -> None:
        """Idempotent: exchanges, queues and bindings (safe to call from every process)."""
        channel.exchange_declare(self.exchange, exchange_type="topic", durable=True)
        channel.exchange_declare(self.dead_exchange, exchange_type="fanout", durable=True)
        channel.queue_declare(
            self.queue, durable=True, arguments={"x-single-active-consumer": True}
        )
        channel.queue_bind(self.queue, self.exchange, routing_key="#")
        channel.queue_declare(self.dead_queue, durable=True)
        channel.queue_bind(self.dead_queue, self.dead_exchange)

    def delete(self, channel: pika.adapters.blocking_connection.BlockingChannel) -> None:
        """Remove everything :meth:`declare` made (tests clean up their own prefix)."""
        for queue in (self.queue, self.dead_queue):
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
