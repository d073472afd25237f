"""Land one micro-batch of live carrier messages in the lake, in one transaction.

The same code path as the batch ingestion, one message at a time instead of one file:

1. **decode** the carrier's own payload (webhook JSON, DCSA JSON, rail CSV row); a body that is
   not valid UTF-8, JSON or a CSV row of the right width is rejected with the reason;
2. **normalise** with ``pipelines.ingest.carriers`` (the same ``carrier_mappings.yaml``);
3. **validate** with the ``carrier_events`` data contract (the same Great Expectations rules);
4. **store**, in one lake transaction: new events into ``raw.carrier_events_stream`` (events
   whose ``(carrier_id, event_id)`` is already stored are counted as duplicates and skipped, so
   a redelivered message never lands twice), rejected messages into
   ``quarantine.rejected_records`` with every reason, whatever the live hooks add (ETAs,
   alerts, the CRM outbox), and one row of ``ops.stream_batches``.

Only after the commit does the consumer acknowledge the messages (at least once end to end,
exactly once in the lake). Micro-batches are small, so the lake is attached with a larger
inlining limit: they stay in the catalog and :func:`compact` flushes them into Parquet files
now and then, instead of writing one tiny file per batch.
"""

from __future__ import annotations

import contextlib
import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import duckdb
import pandas as pd

from pipelines.contracts.enforce import enforce
from pipelines.contracts.model import Contract, load_contract
from pipelines.ingest import carriers as carrier_feeds
from pipelines.ingest import readers
from pipelines.ingest.ops import ensure_ops_tables
from pipelines.ingest.runner import (
    LINEAGE_COLUMNS,
    STREAM_COLUMNS,
    STREAM_TABLE,
    carrier_registry,
    ensure_raw_table,
    rejected_rows,
)

DATASET = "carrier_events"

BATCHES_DDL = """
create table if not exists ops.stream_batches (
    batch_id varchar not null,
    queue varchar not null,
    received integer not null,
    landed integer not null,
    duplicates integer not null,
    quarantined integer not null,
    redelivered integer not null,
    eta_updates integer not null,
    alerts integer not null,
    messages integer not null,
    first_published_at timestamptz,
    last_published_at timestamptz,
    max_event_at timestamptz,
    started_at timestamptz not null,
    committed_at timestamptz not null
)"""


@dataclass(frozen=True)
class Delivery:
    """One message as the consumer received it."""

    body: bytes
    carrier_id: str | None
    feed_format: str | None
    published_at: datetime | None
    redelivered: bool = False


@dataclass
class Rejected:
    delivery: Delivery
    reasons: list[str]


@dataclass
class BatchResult:
    batch_id: str
    received: int = 0
    landed: int = 0
    duplicates: int = 0
    quarantined: int = 0
    redelivered: int = 0
    eta_updates: int = 0
    alerts: int = 0
    messages: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    landed_events: pd.DataFrame | None = None
    max_event_at: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            k: v
            for k, v in self.__dict__.items()
            if k not in ("rejected", "landed_events", "max_event_at")
        }


#: A live hook runs inside the batch's transaction after the events are stored:
#: (connection, the newly landed events, the result to add its counts to) -> None.
Hook = Callable[[duckdb.DuckDBPyConnection, pd.DataFrame, BatchResult], None]


def ensure_stream_tables(con: duckdb.DuckDBPyConnection, contract: Contract | None = None) -> None:
    """The raw tables (batch and stream), quarantine and ``ops.stream_batches``."""
    ensure_raw_table(con, contract or load_contract(DATASET))
    ensure_ops_tables(con)
    con.execute(BATCHES_DDL)


def message_key(body: bytes) -> str:
    return hashlib.sha1(body).hexdigest()


# ------------------------------------------------------------------------------------ decode

_BOM = b"\xef\xbb\xbf"


def _quarantined_text(body: bytes) -> str:
    """What quarantine keeps of a message: its text, or over the size cap a prefix, its size
    and its SHA-256 (the dead-letter queue keeps the whole body)."""
    over = readers.oversize(body)
    return body.decode("utf-8", errors="replace") if over is None else over[0]


def _decode(delivery: Delivery) -> dict[str, Any]:
    """The carrier's native record, or ValueError with a reason a steward can act on.

    The checks are the batch readers' (``pipelines/ingest/readers.py``): the size cap before
    anything else, then UTF-8 (a leading byte-order mark is dropped), then the JSON object
    (nesting depth, duplicate keys, NaN, NUL) or the rail row (one line, the right width).
    """
    body = delivery.body
    over = readers.oversize(body)
    if over is not None:
        raise ValueError(over[1].replace("raw_record keeps", "quarantine keeps"))
    if not body.strip():
        raise ValueError("empty message body")
    if body.startswith(_BOM):
        body = body[len(_BOM) :]
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not valid UTF-8: {exc.reason} at byte {exc.start}") from exc
    if delivery.feed_format == "rail_csv":
        try:
            return readers.parse_delimited_row(text, carrier_feeds.RAIL_COLUMNS, ";")
        except readers.RecordError as exc:
            raise ValueError(f"rail {exc}") from exc
    return readers.parse_json_object(text)


def _header_problem(d: Delivery, feed: str | None) -> str | None:
    if not d.carrier_id:
        return "carrier_id: the message has no carrier_id header"
    if len(d.carrier_id) > 64 or not d.carrier_id.isprintable():
        return f"carrier_id: header {d.carrier_id[:40]!r} is not a carrier id"
    if feed not in carrier_feeds.FEED_FORMATS:
        return f"feed_format: {str(feed)[:40]!r} is not a known feed format"
    return None


def normalise(
    deliveries: list[Delivery], registry: dict[str, dict[str, str]]
) -> tuple[list[dict[str, Any]], list[int], list[Rejected]]:
    """Canonical events (with the index of their delivery) and the messages that cannot be read.

    Never raises on a message: whatever one message makes fail (decoding, the normaliser)
    rejects that message with the reason, and the others go on.
    """
    events: list[dict[str, Any]] = []
    origin: list[int] = []
    rejected: list[Rejected] = []
    for i, d in enumerate(deliveries):
        try:
            info = registry.get(d.carrier_id or "", {})
            feed = d.feed_format or info.get("feed_format")
            problem = _header_problem(d, feed)
            if problem:
                rejected.append(Rejected(d, [problem]))
                continue
            try:
                record = _decode(Delivery(d.body, d.carrier_id, feed, d.published_at))
            except ValueError as exc:
                rejected.append(Rejected(d, [str(exc)]))
                continue
            # an event whose record has problems keeps them under carrier_feeds.PROBLEMS:
            # StreamLander.land rejects it with them ahead of the contract's reasons
            (event,) = carrier_feeds.normalise(feed, d.carrier_id, [record], info.get("mode"))
        except Exception as exc:  # noqa: BLE001 - one message never stops the stream
            rejected.append(
                Rejected(
                    d, [f"message: could not be read ({type(exc).__name__}: {str(exc)[:160]})"]
                )
            )
            continue
        events.append(event)
        origin.append(i)
    return events, origin, rejected


def _receipts(deliveries: list[Delivery], origin: list[int], taken: datetime) -> pd.Series:
    """Each event's receipt for the contract's ``receiptWindow``: its message's publication,
    never later than when the consumer took the batch (a publisher clock ahead gains nothing)."""
    return pd.Series(
        [min(deliveries[i].published_at or taken, taken) for i in origin],
        dtype="datetime64[ns, UTC]",
    )


# ------------------------------------------------------------------------------------ store


class StreamLander:
    """Holds the contract and the carrier registry; lands batches on a writer connection."""

    def __init__(
        self, con: duckdb.DuckDBPyConnection, queue: str, hooks: list[Hook] | None = None
    ) -> None:
        self.con = con
        self.queue = queue
        self.contract = load_contract(DATASET)
        self.hooks = list(hooks or [])
        ensure_stream_tables(con, self.contract)
        self.registry = carrier_registry(con)
        self._columns = [c.name for c in self.contract.columns]

    def land(self, deliveries: list[Delivery]) -> BatchResult:
        started = datetime.now(UTC)
        result = BatchResult(batch_id=uuid.uuid4().hex, received=len(deliveries))
        result.redelivered = sum(d.redelivered for d in deliveries)
        events, origin, rejected = normalise(deliveries, self.registry)
        typed = pd.DataFrame(columns=self._columns)
        if events:
            problems = {
                i: e.pop(carrier_feeds.PROBLEMS)
                for i, e in enumerate(events)
                if carrier_feeds.PROBLEMS in e
            }
            enforcement = enforce(
                pd.DataFrame.from_records(events, columns=self._columns),
                self.contract,
                received_at=_receipts(deliveries, origin, started),
            )
            why = dict(enforcement.reasons)
            for idx, found in problems.items():
                why[idx] = found + why.get(idx, [])
            for idx in sorted(why):
                rejected.append(Rejected(deliveries[origin[idx]], why[idx]))
            keep = ~enforcement.typed.index.isin(list(why))
            typed = enforcement.typed.loc[keep].copy()
            typed["_published_at"] = [deliveries[origin[i]].published_at for i in typed.index]
        result.rejected = rejected
        con = self.con
        con.execute("begin transaction")
        try:
            landed = self._store_events(typed, result, started)
            self._store_rejected(rejected, result, started)
            for hook in self.hooks:
                hook(con, landed, result)
            published = [d.published_at for d in deliveries if d.published_at]
            con.execute(
                "insert into ops.stream_batches values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    result.batch_id,
                    self.queue,
                    result.received,
                    result.landed,
                    result.duplicates,
                    result.quarantined,
                    result.redelivered,
                    result.eta_updates,
                    result.alerts,
                    result.messages,
                    min(published) if published else None,
                    max(published) if published else None,
                    result.max_event_at,
                    started,
                    datetime.now(UTC),
                ],
            )
            con.execute("commit")
        except BaseException:
            # a failed COMMIT has already ended the transaction: rolling back may fail too
            with contextlib.suppress(duckdb.Error):
                con.execute("rollback")
            raise
        result.landed_events = landed
        return result

    def _store_events(
        self, typed: pd.DataFrame, result: BatchResult, started: datetime
    ) -> pd.DataFrame:
        if typed.empty:
            return typed
        unique = typed.drop_duplicates(["carrier_id", "event_id"], keep="first")
        self.con.register("_batch_keys", unique[["carrier_id", "event_id"]])
        try:
            # only events ingested within the dedup window: the files of older ones are pruned
            # by their _ingested_at statistics (see dedup_window)
            seen = self.con.execute(
                f"select k.carrier_id, k.event_id from _batch_keys k join {STREAM_TABLE} s "
                "on s.carrier_id = k.carrier_id and s.event_id = k.event_id "
                "where s._ingested_at >= ?",
                [(pd.Timestamp(started) - dedup_window()).to_pydatetime()],
            ).fetchall()
        finally:
            self.con.unregister("_batch_keys")
        if seen:
            seen_keys = pd.MultiIndex.from_tuples(seen)
            fresh = ~pd.MultiIndex.from_frame(unique[["carrier_id", "event_id"]]).isin(seen_keys)
            new = unique.loc[fresh].copy()
        else:
            new = unique.copy()
        result.duplicates = len(typed) - len(new)
        result.landed = len(new)
        if new.empty:
            return new
        new["_partition_key"] = started.date().isoformat()
        new["_source_file"] = f"amqp:{self.queue}"
        new["_record_no"] = pd.array([None] * len(new), dtype="Int64")
        new["_run_id"] = result.batch_id
        new["_ingested_at"] = started
        lineage = {**LINEAGE_COLUMNS, **STREAM_COLUMNS}
        cols = ", ".join([f'"{c}"' for c in self._columns] + list(lineage))
        casts = ", ".join(
            [f'cast("{c.name}" as {c.duckdb_type})' for c in self.contract.columns]
            + [f"cast({n} as {t})" for n, t in lineage.items()]
        )
        self.con.register("_landed", new)
        try:
            self.con.execute(f"insert into {STREAM_TABLE} ({cols}) select {casts} from _landed")
        finally:
            self.con.unregister("_landed")
        result.max_event_at = pd.Timestamp(new["event_ts"].max()).to_pydatetime()
        return new.reset_index(drop=True)

    def _store_rejected(self, rejected: list[Rejected], result: BatchResult, started: datetime):
        if not rejected:
            return
        # a redelivered bad message is quarantined once: its source names the message's hash
        items = {}
        for r in rejected:
            source = (
                f"amqp:{self.queue}:{r.delivery.carrier_id or '-'}:{message_key(r.delivery.body)}"
            )
            items.setdefault(
                source,
                (
                    started.date().isoformat(),
                    source,
                    None,
                    _quarantined_text(r.delivery.body),
                    r.reasons,
                ),
            )
        frame = rejected_rows(DATASET, result.batch_id, started, list(items.values()))
        self.con.register("_rejected", frame)
        try:
            count = self.con.execute(
                "insert into quarantine.rejected_records (run_id, dataset, partition_key, "
                "source_file, record_no, reason, reasons, raw_record, quarantined_at, rules) "
                "select run_id, dataset, partition_key, source_file, record_no, reason, reasons, "
                "raw_record, quarantined_at, rules from _rejected r where not exists ("
                "select 1 from quarantine.rejected_records q where q.dataset = r.dataset "
                "and q.source_file = r.source_file)"
            ).fetchone()[0]
        finally:
            self.con.unregister("_rejected")
        result.quarantined = int(count)


def dedup_window() -> pd.Timedelta:
    """How far back the stream's duplicate check looks (``ORDERTOWER_STREAM_DEDUP_WINDOW_DAYS``,
    14 days by default): a broker redelivery comes within minutes and a carrier's re-send within
    days, so the check never scans the whole history. A copy of an event first stored longer
    ago than the window lands again; ``fct_tracking_events`` keeps the copy received first (its
    ``received_count`` counts both) and an alert already raised for its episode is not raised
    again (alert ids are episode hashes)."""
    from ordertower.settings import get_settings

    return pd.Timedelta(days=get_settings().stream_dedup_window_days)


def compact(con: duckdb.DuckDBPyConnection) -> None:
    """Flush the stream's inlined micro-batches into Parquet files (a few large ones)."""
    con.execute(
        "call ducklake_flush_inlined_data('lake', schema_name => 'raw', "
        "table_name => 'carrier_events_stream')"
    )
    con.execute(
        "call ducklake_flush_inlined_data('lake', schema_name => 'ops', "
        "table_name => 'stream_batches')"
    )
