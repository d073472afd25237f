"""Replay a simulated world's carrier feeds onto the broker, as the carriers would send them live.

``ordertower simulate --live`` reads ``landing/carriers/<carrier>/date=D/<file>`` for a range of
days, turns every line into one message in the carrier's own format (a webhook JSON, a DCSA event
JSON, a rail CSV line: malformed lines are sent as they are, the consumer dead-letters them) and
publishes them in event-time order, either in accelerated real time (``speed`` world seconds per
wall second) or at a fixed rate (``rate`` messages per second, for the latency bench).
Publishing uses publisher confirms and persistent messages, so a returned call means the broker
has the event: messages go out in AMQP transactions of up to ``chunk`` messages (one round
trip per chunk instead of one per message), committed at once whenever the publisher is about
to wait, so a message is never held back longer than the pacing requires.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import pika

from pipelines.ingest import carriers as carrier_feeds
from pipelines.ingest.landing import refusal
from pipelines.stream.broker import FEED_CONTENT_TYPES, Topology, connect, routing_key


@dataclass(frozen=True, order=True)
class LiveMessage:
    event_time: float  # seconds since the epoch (ordering key; the file's day when unparseable)
    carrier_id: str
    feed_format: str
    body: bytes = field(compare=False)


@dataclass
class PublishStats:
    published: int = 0
    seconds: float = 0.0
    first_event: datetime | None = None
    last_event: datetime | None = None
    per_carrier: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "published": self.published,
            "seconds": round(self.seconds, 2),
            "rate_per_s": round(self.published / self.seconds, 1) if self.seconds else None,
            "first_event": self.first_event.isoformat() if self.first_event else None,
            "last_event": self.last_event.isoformat() if self.last_event else None,
            "per_carrier": dict(sorted(self.per_carrier.items())),
        }


def _epoch(text: str | None, fallback: float) -> float:
    if not text:
        return fallback
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except (TypeError, ValueError):
        return fallback


def _event_time(feed_format: str, line: str, fallback: float) -> float:
    if feed_format == "rail_csv":
        cells = line.split(";")
        if len(cells) < len(carrier_feeds.RAIL_COLUMNS):
            return fallback
        record = dict(zip(carrier_feeds.RAIL_COLUMNS, cells, strict=False))
        return _epoch(
            carrier_feeds.rail_local_to_utc(record["local_time"], record["station_code"]), fallback
        )
    try:
        record = json.loads(line)
    except ValueError:
        return fallback
    if not isinstance(record, dict):
        return fallback
    if feed_format == "parcel_webhook_json":
        return _epoch((record.get("checkpoint") or {}).get("checkpoint_time"), fallback)
    return _epoch(record.get("eventDateTime"), fallback)


def _days(folder: Path) -> Iterator[tuple[date, Path]]:
    for day_dir in sorted(folder.glob("date=*")):
        try:
            yield date.fromisoformat(day_dir.name.removeprefix("date=")), day_dir
        except ValueError:
            continue


def landed_days(landing_dir: Path) -> list[date]:
    """Every day that has a carrier file in the landing zone."""
    days = {d for carrier in (landing_dir / "carriers").glob("*") for d, _ in _days(carrier)}
    return sorted(days)


def read_messages(
    landing_dir: Path, day_from: date | None = None, day_to: date | None = None
) -> list[LiveMessage]:
    """Every carrier line of the days in range, as messages in event-time order."""
    messages: list[LiveMessage] = []
    for carrier_dir in sorted((landing_dir / "carriers").glob("*")):
        carrier_id = carrier_dir.name
        for day, day_dir in _days(carrier_dir):
            if (day_from and day < day_from) or (day_to and day > day_to):
                continue
            fallback = datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
            for path in sorted(day_dir.iterdir()):
                feed = carrier_feeds.FILE_FORMATS.get(path.name)
                if feed is None:
                    continue
                refused = refusal(path, landing_dir)
                if refused is not None:  # the same rule as ingestion: links are never read
                    logging.getLogger("ordertower.stream").warning("%s: %s", path, refused)
                    continue
                lines = path.read_bytes().decode("utf-8", errors="replace").splitlines()
                if feed == "rail_csv":
                    lines = lines[1:]  # the header: a live rail message is one data row
                for line in lines:
                    if not line.strip():
                        continue
                    messages.append(
                        LiveMessage(
                            _event_time(feed, line, fallback), carrier_id, feed, line.encode()
                        )
                    )
    messages.sort()
    return messages


def publish(
    messages: list[LiveMessage],
    topology: Topology | None = None,
    url: str | None = None,
    speed: float | None = None,
    rate: float | None = None,
    on_progress: Callable[[PublishStats], None] | None = None,
    chunk: int = 50,
) -> PublishStats:
    """Publish ``messages`` in order. ``rate`` (messages/s) wins over ``speed`` (world seconds
    per wall second); with neither, as fast as the broker confirms."""
    topology = topology or Topology.from_env()
    stats = PublishStats()
    connection = connect(url)
    try:
        channel = connection.channel()
        topology.declare(channel)
        channel.tx_select()
        uncommitted = 0
        started = time.monotonic()
        first = messages[0].event_time if messages else 0.0
        for i, message in enumerate(messages):
            if rate:
                due = started + i / rate
            elif speed:
                due = started + (message.event_time - first) / speed
            else:
                due = 0.0
            wait = due - time.monotonic()
            if uncommitted and (uncommitted >= chunk or wait > 0.02):
                channel.tx_commit()
                uncommitted = 0
                wait = due - time.monotonic()
            if wait > 0:
                connection.sleep(wait)  # keeps the connection's heartbeats going
            headers = {
                "carrier_id": message.carrier_id,
                "feed_format": message.feed_format,
                "published_at_us": time.time_ns() // 1000,
            }
            channel.basic_publish(
                topology.exchange,
                routing_key(message.feed_format, message.carrier_id),
                message.body,
                pika.BasicProperties(
                    content_type=FEED_CONTENT_TYPES[message.feed_format],
                    delivery_mode=pika.DeliveryMode.Persistent,
                    headers=headers,
                ),
                mandatory=False,
            )
            uncommitted += 1
            stats.published += 1
            stats.per_carrier[message.carrier_id] = stats.per_carrier.get(message.carrier_id, 0) + 1
            if on_progress and stats.published % 1000 == 0:
                stats.seconds = time.monotonic() - started
                on_progress(stats)
        if uncommitted:
            channel.tx_commit()
        stats.seconds = time.monotonic() - started
        if messages:
            stats.first_event = datetime.fromtimestamp(messages[0].event_time, UTC)
            stats.last_event = datetime.fromtimestamp(messages[-1].event_time, UTC)
    finally:
        if connection.is_open:
            connection.close()
    return stats
