"""Land a source's files for some partitions: read, normalise, enforce contracts, write.

Everything received ends up in exactly one place: the raw table (valid records) or
``quarantine.rejected_records`` (with the original text and every reason), and the counts go to
``ops.ingest_runs`` so that ``received = landed + quarantined`` can be checked. Re-running a
partition replaces its rows, its quarantine and nothing else, in one transaction per dataset.
"""

from __future__ import annotations

import atexit
import json
import logging
import multiprocessing
import os
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from ordertower import lake
from ordertower.settings import get_settings
from pipelines.contracts import Contract, load_contract
from pipelines.contracts.enforce import enforce
from pipelines.contracts.expectations import RuleResult
from pipelines.ingest import carriers as carrier_feeds
from pipelines.ingest import landing, typed
from pipelines.ingest.ops import UNPARTITIONED, ensure_ops_tables
from pipelines.ingest.readers import (
    ParsedFile,
    Reject,
    bounded,
    flatten,
    read_csv,
    read_jsonl,
)
from pipelines.ingest.sources import SOURCES_BY_NAME, Source

log = logging.getLogger(__name__)

LINEAGE_COLUMNS = {
    "_partition_key": "varchar",
    "_source_file": "varchar",
    "_record_no": "bigint",
    "_run_id": "varchar",
    "_ingested_at": "timestamptz",
}

#: Partitions are processed in batches of about this many records, which bounds memory while
#: keeping the fixed cost of a validation run small.
BATCH_RECORDS = 200_000


@dataclass
class PartitionStats:
    files: int = 0
    received: int = 0
    landed: int = 0
    quarantined: int = 0
    unknown_codes: int = 0
    max_event_ts: datetime | None = None


@dataclass
class DatasetResult:
    dataset: str
    table: str
    partitions: dict[str, PartitionStats] = field(default_factory=dict)
    rules: dict[str, dict[str, Any]] = field(default_factory=dict)  # rule -> aggregated result
    top_reasons: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    #: what is worth knowing but wrong with nothing (an optional source not brought in)
    notes: list[str] = field(default_factory=list)
    #: records whose values DuckDB cast (typed reads); the others were coerced in Python
    typed_records: int = 0

    @property
    def received(self) -> int:
        return sum(p.received for p in self.partitions.values())

    @property
    def landed(self) -> int:
        return sum(p.landed for p in self.partitions.values())

    @property
    def quarantined(self) -> int:
        return sum(p.quarantined for p in self.partitions.values())

    @property
    def unknown_codes(self) -> int:
        return sum(p.unknown_codes for p in self.partitions.values())

    @property
    def quarantine_rate(self) -> float:
        return self.quarantined / self.received if self.received else 0.0

    @property
    def conserved(self) -> bool:
        return all(p.received == p.landed + p.quarantined for p in self.partitions.values())


@dataclass
class _Collected:
    """Records of one dataset gathered from the files of a batch, with where each came from."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    #: the position of each of ``rows`` among all the records (the others are in ``typed``)
    row_index: list[int] = field(default_factory=list)
    #: records cast in SQL by a typed read (pipelines/ingest/typed.py), indexed by position
    typed: list[pd.DataFrame] = field(default_factory=list)
    partition: list[str] = field(default_factory=list)
    source_file: list[str] = field(default_factory=list)
    record_no: list[int | None] = field(default_factory=list)
    #: the record as received: its text, or (nested items) the parsed object, serialised only if
    #: the record is quarantined (raw_text); most never are
    raw: list[Any] = field(default_factory=list)
    missing: dict[int, set[str]] = field(default_factory=dict)
    #: row index -> what the carrier normaliser found wrong (rejected before contract reasons)
    problems: dict[int, list[str]] = field(default_factory=dict)
    # (partition, file, record_no, raw, reasons)
    rejects: list[tuple[str, str, int | None, str, list[str]]] = field(default_factory=list)
    files: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))


# ---------------------------------------------------------------------------------- reading


def source_files(source: Source, landing_dir: Path, partition_key: str) -> list[Path]:
    pattern = source.pattern.format(date=partition_key) if source.partitioned else source.pattern
    # links are listed too (broken ones included): _collect refuses them with a reason
    return sorted(p for p in landing_dir.glob(pattern) if landing.is_candidate(p))


def landed_partitions(source: Source, landing_dir: Path) -> list[str]:
    """Partition keys (dates) for which the landing zone has files of this source."""
    if not source.partitioned:
        return [UNPARTITIONED]
    head = source.pattern.split("date={date}")[0]
    keys = {p.name.removeprefix("date=") for p in landing_dir.glob(f"{head}date=*") if p.is_dir()}
    return sorted(keys)


def _relative(path: Path, landing_dir: Path) -> str:
    try:
        return str(path.relative_to(landing_dir))
    except ValueError:
        return str(path)


def _parse(
    source: Source, path: Path, contract: Contract, registry: dict[str, dict[str, str]]
) -> tuple[ParsedFile, list[dict[str, Any]]]:
    """Parse one file into flat records of the source's top-level dataset."""
    if source.file_format == "carrier":
        carrier_id = path.parent.parent.name
        info = registry.get(carrier_id, {})
        feed = info.get("feed_format") or carrier_feeds.FILE_FORMATS.get(path.name)
        if feed == "rail_csv":
            parsed = read_csv(path, carrier_feeds.RAIL_COLUMNS, delimiter=";", one_line_rows=True)
        elif feed in carrier_feeds.FEED_FORMATS:
            parsed = read_jsonl(path)
        else:
            parsed = ParsedFile(path)
            text = path.read_text(encoding="utf-8", errors="replace")
            for number, line in enumerate(text.splitlines(), start=1):
                if line.strip():
                    parsed.rejects.append(
                        Reject(
                            number,
                            bounded(line),
                            f"carrier {carrier_id!r} has no known feed format",
                        )
                    )
            return parsed, []
        mode = info.get("mode")
        return parsed, carrier_feeds.normalise(feed, carrier_id, parsed.records, mode)
    if source.file_format == "csv":
        parsed = read_csv(path, contract.column_names, delimiter=source.delimiter)
        return parsed, parsed.records
    parsed = read_jsonl(path)
    return parsed, [flatten(r) for r in parsed.records]


def _collect(
    source: Source,
    partitions: list[str],
    landing_dir: Path,
    contracts: dict[str, Contract],
    registry: dict[str, dict[str, str]],
    warnings: list[str],
    notes: list[str] | None = None,
) -> dict[str, _Collected]:
    collected = {name: _Collected() for name in source.datasets}
    parent = collected[source.dataset]
    is_carrier = source.file_format == "carrier"
    fast_reads = _typed_reads(source, contracts, partitions, landing_dir, registry)
    for key in partitions:
        paths = source_files(source, landing_dir, key)
        if not paths and not source.partitioned:
            # a full snapshot that was never delivered: say so rather than land nothing quietly
            absent = f"{source.pattern}: no such file in the landing zone, nothing received"
            if source.optional and not (landing_dir / source.pattern).parent.is_dir():
                # an optional source never brought in: nothing was expected
                (notes if notes is not None else warnings).append(absent)
            else:
                warnings.append(absent)
        for path in paths:
            rel = _relative(path, landing_dir)
            refused = landing.refusal(path, landing_dir)
            if refused is not None:  # a link or a way out of the landing zone: never read
                for name in source.datasets:
                    collected[name].files[key].add(rel)
                parent.rejects.append((key, rel, None, "", [refused]))
                warnings.append(f"{rel}: {refused}")
                continue
            fast = fast_reads.get(path)
            if fast is not None:
                for name in source.datasets:
                    collected[name].files[key].add(rel)
                normalise = None
                if is_carrier:
                    carrier_id, feed, mode = _carrier_feed(path, registry)

                    def normalise(record, feed=feed, carrier_id=carrier_id, mode=mode):
                        return carrier_feeds.normalise(feed, carrier_id, [record], mode)[0]

                if isinstance(fast, typed.TypedJsonFile):
                    warnings.extend(f"{rel}: {w}" for w in fast.parsed.warnings)
                    _take_typed_json(collected, source, fast, key, rel, normalise)
                else:
                    warnings.extend(f"{rel}: {w}" for w in fast.warnings)
                    _take_typed(parent, fast, key, rel, normalise)
                continue
            try:
                parsed, records = _parse(source, path, contracts[source.dataset], registry)
            except Exception as exc:  # noqa: BLE001 - a reader bug must not fail the source
                log.exception("%s: cannot be read", rel)
                for name in source.datasets:
                    collected[name].files[key].add(rel)
                reason = f"file cannot be read: {type(exc).__name__}: {str(exc)[:200]}"
                parent.rejects.append((key, rel, None, "", [reason]))
                warnings.append(f"{rel}: {reason}")
                continue
            warnings.extend(f"{rel}: {w}" for w in parsed.warnings)
            for name in source.datasets:
                collected[name].files[key].add(rel)
            for rej in parsed.rejects:
                parent.rejects.append((key, rel, rej.record_no, rej.raw, [rej.reason]))
            for record, number, raw, flat in zip(
                parsed.records, parsed.record_nos, parsed.raws, records, strict=True
            ):
                idx = len(parent.partition)
                problems = flat.pop(carrier_feeds.PROBLEMS, None) if is_carrier else None
                if problems:
                    parent.problems[idx] = problems
                parent.rows.append(flat)
                parent.row_index.append(idx)
                parent.partition.append(key)
                parent.source_file.append(rel)
                parent.record_no.append(number)
                parent.raw.append(raw)
                if parsed.missing_columns:
                    parent.missing[idx] = parsed.missing_columns
                for child in source.children:
                    _collect_children(collected[child.dataset], child, record, key, rel, number)
    return collected


def _carrier_feed(
    path: Path, registry: dict[str, dict[str, str]]
) -> tuple[str, str | None, str | None]:
    """``(carrier_id, feed format, mode)`` of a carrier's landing file, as :func:`_parse` reads it."""
    carrier_id = path.parent.parent.name
    info = registry.get(carrier_id, {})
    feed = info.get("feed_format") or carrier_feeds.FILE_FORMATS.get(path.name)
    return carrier_id, feed, info.get("mode")


def _typed_carrier_reads(
    con: duckdb.DuckDBPyConnection,
    paths: list[Path],
    contract: Contract,
    registry: dict[str, dict[str, str]],
    cap: int,
) -> dict[Path, typed.TypedFile | typed.TypedJsonFile]:
    """Parcel webhooks and rail files read and normalised in DuckDB, carrier by carrier; DCSA
    events are read and normalised record by record."""
    by_carrier: dict[tuple[str, str, str | None], list[Path]] = defaultdict(list)
    for path in paths:
        carrier_id, feed, mode = _carrier_feed(path, registry)
        if feed in ("parcel_webhook_json", "rail_csv"):
            by_carrier[(carrier_id, feed, mode)].append(path)
    out: dict[Path, typed.TypedFile | typed.TypedJsonFile] = {}
    for (carrier_id, feed, mode), mine in by_carrier.items():
        if feed == "rail_csv":
            out.update(
                typed.typed_rail(
                    con,
                    mine,
                    contract,
                    carrier_id,
                    carrier_feeds.RAIL_COLUMNS,
                    carrier_feeds.mappings()["rail_csv"],
                    carrier_feeds._codes("rail_csv", carrier_id),
                    mode or carrier_feeds.mappings()["rail_csv"]["mode"],
                    cap,
                )
            )
            continue
        out.update(
            typed.typed_parcel_webhooks(
                con,
                mine,
                contract,
                carrier_id,
                carrier_feeds._codes("parcel_webhook_json", carrier_id),
                carrier_feeds.mappings()["parcel_webhook_json"]["mode"],
                cap,
            )
        )
    return out


def _typed_reads(
    source: Source,
    contracts: dict[str, Contract],
    partitions: list[str],
    landing_dir: Path,
    registry: dict[str, dict[str, str]] | None = None,
) -> dict[Path, typed.TypedFile | typed.TypedJsonFile]:
    """The batch's files DuckDB reads (pipelines/ingest/typed.py); the others are read record
    by record."""
    if not typed.enabled() or source.file_format not in ("csv", "jsonl", "carrier"):
        return {}
    children = tuple((c, contracts[c.dataset]) for c in source.children)
    if any(
        col.name == c.parent_key and col.logical_type != "string"
        for c, contract in children
        for col in contract.columns
    ):
        return {}
    paths = [
        p
        for key in partitions
        for p in source_files(source, landing_dir, key)
        if landing.refusal(p, landing_dir) is None
    ]
    if not paths:
        return {}
    con = typed.connection()
    cap = get_settings().max_record_bytes
    try:
        if source.file_format == "carrier":
            return _typed_carrier_reads(con, paths, contracts[source.dataset], registry, cap)
        if source.file_format == "jsonl":
            return typed.typed_jsonls(
                con, paths, contracts[source.dataset], source.objects, children, cap
            )
        return typed.typed_csvs(con, paths, contracts[source.dataset], source.delimiter, cap)
    finally:
        con.close()


def _take_typed_json(
    collected: dict[str, _Collected],
    source: Source,
    fast: typed.TypedJsonFile,
    key: str,
    rel: str,
    normalise: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> None:
    """A typed JSON read's records in line order: the typed ones with their typed items, the
    ones Python read as :func:`_collect` takes them (``normalise``: a carrier's native record
    to its canonical event)."""
    parent = collected[source.dataset]
    parsed = fast.parsed
    for rej in parsed.rejects:
        parent.rejects.append((key, rel, rej.record_no, rej.raw, [rej.reason]))
    if not parsed.record_nos and all(
        all(items.ok) for items in fast.children.values()
    ):  # every record and item typed (most files): taken whole
        _take_all_typed_json(collected, source, fast, key, rel)
        return
    order = sorted(
        [(n, 0, i) for i, n in enumerate(fast.record_nos)]
        + [(n, 1, i) for i, n in enumerate(parsed.record_nos)]
    )
    at = []
    cursors = {c.dataset: [0, 0, []] for c in source.children}  # item, python row, typed at
    for number, python, i in order:
        pos = len(parent.partition)
        parent.partition.append(key)
        parent.source_file.append(rel)
        parent.record_no.append(number)
        if python:
            record = parsed.records[i]
            parent.raw.append(parsed.raws[i])
            if normalise is None:
                parent.rows.append(flatten(record))
            else:
                event = normalise(record)
                problems = event.pop(carrier_feeds.PROBLEMS, None)
                if problems:
                    parent.problems[pos] = problems
                parent.rows.append(event)
            parent.row_index.append(pos)
            for child in source.children:
                _collect_children(collected[child.dataset], child, record, key, rel, number)
            continue
        parent.raw.append(fast.raws[i])
        at.append(pos)
        for child in source.children:
            items = fast.children.get(child.dataset)
            if items is None:
                continue
            target, cursor = collected[child.dataset], cursors[child.dataset]
            for index in range(items.counts[i]):
                cpos = len(target.partition)
                target.partition.append(key)
                target.source_file.append(rel)
                target.record_no.append(number)
                target.raw.append(typed.LazyItem(fast.raws[i], child.field, index))
                if items.ok[cursor[0]]:
                    cursor[2].append(cpos)
                else:
                    target.rows.append(items.python_rows[cursor[1]])
                    target.row_index.append(cpos)
                    cursor[1] += 1
                cursor[0] += 1
    block = fast.typed
    block.index = pd.Index(at, dtype="int64")
    parent.typed.append(block)
    for child in source.children:
        items = fast.children.get(child.dataset)
        if items is not None:
            child_block = items.typed
            child_block.index = pd.Index(cursors[child.dataset][2], dtype="int64")
            collected[child.dataset].typed.append(child_block)


def _take_all_typed_json(
    collected: dict[str, _Collected],
    source: Source,
    fast: typed.TypedJsonFile,
    key: str,
    rel: str,
) -> None:
    """:func:`_take_typed_json` of a file whose records and items were all cast in SQL."""
    parent = collected[source.dataset]
    start, n = len(parent.partition), len(fast.record_nos)
    parent.partition.extend([key] * n)
    parent.source_file.extend([rel] * n)
    parent.record_no.extend(fast.record_nos)
    parent.raw.extend(fast.raws)
    fast.typed.index = pd.RangeIndex(start, start + n)
    parent.typed.append(fast.typed)
    for child in source.children:
        items = fast.children.get(child.dataset)
        if items is None:
            continue
        target = collected[child.dataset]
        start, total = len(target.partition), len(items.ok)
        target.partition.extend([key] * total)
        target.source_file.extend([rel] * total)
        for number, raw, count in zip(fast.record_nos, fast.raws, items.counts, strict=True):
            target.record_no.extend([number] * count)
            target.raw.extend(typed.LazyItem(raw, child.field, i) for i in range(count))
        items.typed.index = pd.RangeIndex(start, start + total)
        target.typed.append(items.typed)


def _take_typed(
    target: _Collected,
    fast: typed.TypedFile,
    key: str,
    rel: str,
    normalise: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> None:
    """A typed read's records, in file order, after those already collected (``normalise``: a
    carrier's native row to its canonical event)."""
    start = len(target.partition)
    block = fast.typed
    block.index = block.index + start
    target.typed.append(block)
    n = fast.received
    target.partition.extend([key] * n)
    target.source_file.extend([rel] * n)
    target.record_no.extend(fast.record_nos)
    target.raw.extend(fast.raws)
    target.row_index.extend(start + i for i in fast.python_at)
    if normalise is None:
        target.rows.extend(fast.python_rows)
        return
    for i, row in zip(fast.python_at, fast.python_rows, strict=True):
        event = normalise(row)
        problems = event.pop(carrier_feeds.PROBLEMS, None)
        if problems:
            target.problems[start + i] = problems
        target.rows.append(event)


def raw_text(raw: Any) -> str:
    """A quarantined record's ``raw_record``: the text it came as, or its parsed object as JSON."""
    if isinstance(raw, typed.LazyItem):
        raw = raw.obj()
    return raw if isinstance(raw, str) else json.dumps(raw, ensure_ascii=False, default=str)


def _collect_children(
    target: _Collected, child: Any, record: dict[str, Any], key: str, rel: str, number: int
) -> None:
    items = record.get(child.field)
    if items is None:
        return
    if not isinstance(items, list):
        target.rejects.append(
            (
                key,
                rel,
                number,
                json.dumps(items, default=str)[:4000],
                [f"{child.field}: is not a list"],
            )
        )
        return
    for item in items:
        if not isinstance(item, dict):
            target.rejects.append(
                (key, rel, number, raw_text(item), [f"{child.field}: item is not an object"])
            )
            continue
        row = flatten(item)
        row[child.parent_key] = record.get(child.parent_key)
        target.row_index.append(len(target.partition))
        target.rows.append(row)
        target.partition.append(key)
        target.source_file.append(rel)
        target.record_no.append(number)
        target.raw.append(item)


# ---------------------------------------------------------------------------------- writing


def raw_table_ddl(contract: Contract) -> str:
    cols = [f'"{c.name}" {c.duckdb_type}' for c in contract.columns]
    cols += [f"{name} {kind}" for name, kind in LINEAGE_COLUMNS.items()]
    return f"create table if not exists {contract.table} (\n  " + ",\n  ".join(cols) + "\n)"


#: Carrier events received live from the broker (``ordertower stream``): the contract's columns,
#: the lineage, and when the carrier's message was published.
STREAM_TABLE = "raw.carrier_events_stream"
STREAM_COLUMNS = {"_published_at": "timestamptz"}


def stream_table_ddl(contract: Contract) -> str:
    cols = [f'"{c.name}" {c.duckdb_type}' for c in contract.columns]
    cols += [f"{n} {t}" for n, t in {**LINEAGE_COLUMNS, **STREAM_COLUMNS}.items()]
    return f"create table if not exists {STREAM_TABLE} (\n  " + ",\n  ".join(cols) + "\n)"


def ensure_raw_table(con: duckdb.DuckDBPyConnection, contract: Contract) -> None:
    """Create the raw table from the contract; add columns a newer contract version declares.
    Carrier events also get their (empty) stream table, so the staging view that unions both
    always includes the stream, whether the consumer has started yet or not.

    The catalog is read first: on DuckLake every DDL statement is a catalog transaction, even
    a ``create table if not exists`` that finds the table, and ingestion calls this for every
    dataset of every step."""
    schema, table = contract.table.split(".")
    existing = set(lake.columns_of(con, schema, table))
    if not existing:
        con.execute(raw_table_ddl(contract))
        existing = set(contract.column_names)  # created from the contract: nothing to add
    if contract.table == "raw.carrier_events" and not lake.columns_of(
        con, *STREAM_TABLE.split(".")
    ):
        con.execute(stream_table_ddl(contract))
    for column in contract.columns:
        if column.name not in existing:
            con.execute(
                f'alter table {contract.table} add column "{column.name}" {column.duckdb_type}'
            )


def _timestamp_column(contract: Contract) -> str | None:
    for c in contract.columns:
        if c.logical_type == "timestamp":
            return c.name
    for c in contract.columns:
        if c.logical_type == "date":
            return c.name
    return None


def insert_rows(
    con: duckdb.DuckDBPyConnection, table: str, columns: tuple[str, ...], rows: list[tuple]
) -> None:
    """Append ``rows`` to ``table`` in one statement (``executemany`` inserts row by row: 11 s
    of a 100k-order ingestion went to the per-partition rule results)."""
    if not rows:
        return
    import pyarrow as pa

    # columns as Arrow arrays: a column of Nones stays typed NULL and casts on insert
    frame = pa.table({c: pa.array([r[i] for r in rows]) for i, c in enumerate(columns)})
    con.register("_insert_rows", frame)
    try:
        names = ", ".join(columns)
        con.execute(f"insert into {table} ({names}) select {names} from _insert_rows")
    finally:
        con.unregister("_insert_rows")


def _write(
    con: duckdb.DuckDBPyConnection,
    contract: Contract,
    partitions: list[str],
    landed: pd.DataFrame,
    rejected: pd.DataFrame,
    stats: dict[str, PartitionStats],
    run_id: str,
    started: datetime,
    rule_rows: list[tuple],
) -> None:
    """Replace the dataset's rows, quarantine and run records of ``partitions`` (in the
    caller's transaction: a batch's datasets land together or not at all)."""
    keys = list(partitions)
    now = datetime.now(UTC)
    con.execute(f"delete from {contract.table} where _partition_key in (select unnest(?))", [keys])
    if len(landed):
        con.register("_landed", landed)
        cols = (
            ", ".join(f'"{c.name}"' for c in contract.columns) + ", " + ", ".join(LINEAGE_COLUMNS)
        )
        casts = ", ".join(f'cast("{c.name}" as {c.duckdb_type})' for c in contract.columns)
        casts += ", " + ", ".join(f"cast({n} as {t})" for n, t in LINEAGE_COLUMNS.items())
        con.execute(f"insert into {contract.table} ({cols}) select {casts} from _landed")
        con.unregister("_landed")
    con.execute(
        "delete from quarantine.rejected_records where dataset = ? "
        "and partition_key in (select unnest(?))",
        [contract.name, keys],
    )
    if len(rejected):
        con.register("_rejected", rejected)
        con.execute(
            "insert into quarantine.rejected_records (run_id, dataset, partition_key, "
            "source_file, record_no, reason, reasons, raw_record, quarantined_at, rules) "
            "select run_id, dataset, partition_key, source_file, record_no, reason, reasons, "
            "raw_record, quarantined_at, rules from _rejected"
        )
        con.unregister("_rejected")
    rows = [
        (
            run_id,
            contract.name,
            key,
            s.files,
            s.received,
            s.landed,
            s.quarantined,
            s.unknown_codes,
            s.max_event_ts,
            started,
            now,
        )
        for key, s in stats.items()
    ]
    insert_rows(
        con,
        "ops.ingest_runs",
        (
            "run_id",
            "dataset",
            "partition_key",
            "files",
            "received",
            "landed",
            "quarantined",
            "unknown_codes",
            "max_event_ts",
            "started_at",
            "finished_at",
        ),
        rows,
    )
    insert_rows(
        con,
        "ops.contract_results",
        (
            "run_id",
            "dataset",
            "partition_key",
            "rule",
            "column_name",
            "expectation",
            "severity",
            "success",
            "unexpected_count",
            "evaluated_rows",
            "checked_at",
        ),
        [(run_id, contract.name, *row, now) for row in rule_rows],
    )


# ---------------------------------------------------------------------------------- enforcing


def _add_rule(rules: dict[str, dict[str, Any]], name: str, outcome: dict[str, Any]) -> None:
    """Aggregate one rule outcome into ``rules`` (passes only if every batch passed)."""
    agg = rules.setdefault(
        name, {**outcome, "success": True, "unexpected_count": 0, "evaluated_rows": 0}
    )
    agg["success"] = agg["success"] and outcome["success"]
    agg["unexpected_count"] += outcome["unexpected_count"]
    agg["evaluated_rows"] += outcome["evaluated_rows"]


def _merge_rules(result: DatasetResult, rule_results: list[RuleResult]) -> None:
    for r in rule_results:
        _add_rule(
            result.rules,
            r.rule.name,
            {
                "column": r.rule.column,
                "expectation": r.rule.expectation,
                "severity": r.rule.severity,
                "success": r.success,
                "unexpected_count": r.unexpected_count,
                "evaluated_rows": r.evaluated_rows,
            },
        )


def _rule_rows_per_partition(
    results: list[RuleResult], row_partitions: list[str], partitions: list[str]
) -> list[tuple]:
    """Each rule's result per partition (a batch validates several partitions at once)."""
    evaluated = Counter(row_partitions)
    rows = []
    for r in results:
        failing = Counter(row_partitions[i] for i in r.unexpected_index)
        mostly = r.rule.kwargs.get("mostly")
        for key in partitions:
            n, bad = evaluated.get(key, 0), failing.get(key, 0)
            if not r.rule.row_level:
                success, bad = r.success, r.unexpected_count
            elif mostly is not None:
                success = bad <= (1 - float(mostly)) * n
            else:
                success = bad == 0
            rows.append(
                (
                    key,
                    r.rule.name,
                    r.rule.column,
                    r.rule.expectation,
                    r.rule.severity,
                    success,
                    bad,
                    n,
                )
            )
    return rows


def _storable(raw: str) -> str:
    """Raw text as quarantine keeps it: at most the record cap (a prefix, its size and hash
    beyond), NUL characters shown as ``\\x00`` (text columns cannot hold them)."""
    raw = bounded(raw)
    return raw.replace("\x00", "\\x00") if "\x00" in raw else raw


def rejected_rows(
    dataset: str,
    run_id: str,
    now: datetime,
    items: list[tuple[str, str, int | None, str, list[str]]],
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "run_id": run_id,
            "dataset": dataset,
            "partition_key": [i[0] for i in items],
            "source_file": [i[1] for i in items],
            "record_no": pd.array([i[2] for i in items], dtype="Int64"),
            # the rule that failed, without the value: groups well on the data-quality page
            "reason": [reason_kind(i[4][0]) for i in items],
            "reasons": [i[4] for i in items],
            "rules": [[reason_kind(r) for r in i[4]] for i in items],
            "raw_record": [_storable(i[3] or "") for i in items],
            "quarantined_at": now,
        }
    )


def _enforce_dataset(
    contract: Contract,
    data: _Collected,
    rejected_parents: set[tuple[str, int]] | None,
    parent_name: str | None,
    result: DatasetResult,
    run_id: str,
    partitions: list[str],
) -> tuple[
    pd.DataFrame, pd.DataFrame, dict[str, PartitionStats], set[tuple[str, int]], list[tuple]
]:
    now = datetime.now(UTC)
    # only the contract's columns: a record with thousands of keys of its own widens nothing
    frame = (
        pd.DataFrame.from_records(data.rows, columns=list(contract.column_names))
        if data.rows
        else pd.DataFrame(index=pd.RangeIndex(0))
    )
    frame.index = pd.Index(data.row_index, dtype="int64")
    pretyped = pd.concat(data.typed) if data.typed else None
    result.typed_records += 0 if pretyped is None else len(pretyped)
    enforcement = enforce(
        frame, contract, data.missing, receipt_times(data.partition, now), pretyped
    )
    _merge_rules(result, enforcement.results)
    rule_rows = _rule_rows_per_partition(enforcement.results, data.partition, partitions)
    reasons = dict(enforcement.reasons)
    for i, problems in data.problems.items():
        reasons[i] = problems + reasons.get(i, [])
    if rejected_parents:
        numbers = {number for _, number in rejected_parents}
        for i, number in enumerate(data.record_no):
            if number in numbers and (data.source_file[i], number) in rejected_parents:
                reasons.setdefault(i, []).append(f"parent {parent_name} record rejected")
    rejects = list(data.rejects)
    for i, why in reasons.items():
        rejects.append(
            (data.partition[i], data.source_file[i], data.record_no[i], raw_text(data.raw[i]), why)
        )
    for item in rejects:
        result.top_reasons[reason_kind(item[4][0])] = (
            result.top_reasons.get(reason_kind(item[4][0]), 0) + 1
        )
    rejected_keys = {(r[1], r[2]) for r in rejects if r[2] is not None}

    keep = ~enforcement.typed.index.isin(list(reasons))
    landed = enforcement.typed.loc[keep].copy()
    at = landed.index.to_numpy()
    landed["_partition_key"] = np.asarray(data.partition, dtype=object)[at]
    landed["_source_file"] = np.asarray(data.source_file, dtype=object)[at]
    landed["_record_no"] = pd.array(data.record_no, dtype="Int64")[at]
    landed["_run_id"] = run_id
    landed["_ingested_at"] = now

    stats = {key: PartitionStats(files=len(data.files.get(key, ()))) for key in partitions}
    ts_col = _timestamp_column(contract)
    if len(landed):
        grouped = landed.groupby("_partition_key", sort=False)
        for key, count in grouped.size().items():
            stats[key].landed = int(count)
        if ts_col is not None:
            for key, value in grouped[ts_col].max().items():
                stats[key].max_event_ts = _as_datetime(value)
        if "is_unmapped" in landed.columns:
            for key, value in grouped["is_unmapped"].sum().items():
                stats[key].unknown_codes = int(value)
    for item in rejects:
        stats[item[0]].quarantined += 1
    for s in stats.values():
        s.received = s.landed + s.quarantined
    rejected = rejected_rows(contract.name, run_id, now, rejects)
    return landed, rejected, stats, rejected_keys, rule_rows


def receipt_times(partitions: list[str], now: datetime) -> pd.Series:
    """When each record counts as received, for the contracts' ``receiptWindow`` rules: the end
    of its partition's day (a day's file holds what was sent that day), never later than now;
    now for unpartitioned snapshots."""
    codes, keys = pd.factorize(pd.Index(partitions, dtype=object))
    ends = []
    for key in keys:
        try:
            day = datetime.fromisoformat(key).replace(tzinfo=UTC)
            ends.append(min(now, day + timedelta(days=1)))
        except ValueError:
            ends.append(now)
    return pd.Series(
        pd.DatetimeIndex(ends, dtype="datetime64[ns, UTC]").take(codes),
        dtype="datetime64[ns, UTC]",
    )


def _as_datetime(value: Any) -> datetime | None:
    if value is None or pd.isna(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if isinstance(value, datetime):
        return value
    return datetime(value.year, value.month, value.day, tzinfo=UTC)


_LEADING_VALUE = re.compile(
    r"""^(?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|-?[0-9][^ ]*|None|True|False)\s+"""
)


def reason_kind(reason: str) -> str:
    """The rule a reason names, without the offending value, so reasons group on the page:
    "quantity: -3 is below the minimum 0" -> "quantity: is below the minimum 0"."""
    head, sep, rest = reason.partition(": ")
    if not sep:
        return reason[:160]
    if head.startswith(("invalid JSON", "not valid UTF-8", "record too large")):
        return head
    return f"{head}: {_LEADING_VALUE.sub('', rest, count=1)}"[:160]


# ---------------------------------------------------------------------------------- public


def carrier_registry(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, str]]:
    """carrier_id -> feed_format and mode, from raw.carriers when it has landed."""
    try:
        rows = con.execute("select carrier_id, feed_format, modes from raw.carriers").fetchall()
    except duckdb.Error:
        return {}
    return {
        cid: {"feed_format": fmt, "mode": (modes or "").split("|")[0] or None}
        for cid, fmt, modes in rows
    }


_DATASET_COLUMNS = (
    "dataset, title, description, domain, owner, contract_version, raw_table, partitioned, "
    "freshness_sla_hours, rules, pii_columns, columns"
)


def _comparable(row: tuple) -> tuple:
    """An ``ops.datasets`` row with its numbers as floats and its lists as tuples."""
    return tuple(
        tuple(v)
        if isinstance(v, list | tuple)
        else float(v)
        if isinstance(v, int | float) and not isinstance(v, bool)
        else v
        for v in row
    )


def _registered(con: duckdb.DuckDBPyConnection, datasets: list[str]) -> dict[str, tuple]:
    """The ``ops.datasets`` rows of ``datasets`` (one per dataset, or none: a duplicate reads
    as a difference)."""
    rows = con.execute(
        f"select {_DATASET_COLUMNS} from ops.datasets where dataset in (select unnest(?))",
        [datasets],
    ).fetchall()
    out = {r[0]: _comparable(r) for r in rows}
    return out if len(out) == len(rows) else {}


def register_datasets(
    con: duckdb.DuckDBPyConnection, source: Source, contracts: dict[str, Contract]
) -> None:
    """Keep ``ops.datasets`` in step with the contracts, so readers need not parse YAML."""
    from pipelines.contracts.expectations import compile_rules

    rows = [
        (
            c.name,
            c.title,
            c.description,
            c.domain,
            c.owner,
            c.version,
            c.table,
            source.partitioned,
            c.freshness_hours,
            len(compile_rules(c)),
            list(c.pii_columns),
            list(c.column_names),
        )
        for c in contracts.values()
    ]
    if _registered(con, list(contracts)) == {r[0]: _comparable(r) for r in rows}:
        # as the contracts say already: no catalog write, no lake snapshot for every step
        return
    con.execute("begin transaction")
    try:
        con.execute(
            "delete from ops.datasets where dataset in (select unnest(?))", [list(contracts)]
        )
        con.executemany(
            f"insert into ops.datasets ({_DATASET_COLUMNS}) "
            "values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise


#: the smallest batch worth a worker of its own (bytes of landing files): below it the work of
#: a source is not split further to keep both workers busy
MIN_SPLIT_BYTES = 4_000_000


def _batches(
    source: Source, landing_dir: Path, partitions: list[str], workers: int = 1
) -> list[list[str]]:
    """Group partitions so each batch holds about BATCH_RECORDS records (by file size), and a
    source too small for that still gives each of ``workers`` two batches (when the batches
    would hold :data:`MIN_SPLIT_BYTES` or more): one batch is read by one process, and this
    process writes a batch while the workers read the next, so the last write, which nothing
    overlaps, is of a smaller batch."""
    sizes = [
        sum(p.lstat().st_size for p in source_files(source, landing_dir, key)) for key in partitions
    ]
    budget = BATCH_RECORDS * 250  # ~250 bytes per record
    if workers > 1:
        budget = min(budget, max(sum(sizes) // (2 * workers), MIN_SPLIT_BYTES))
    batches: list[list[str]] = []
    current: list[str] = []
    size = 0
    for key, bytes_ in zip(partitions, sizes, strict=True):
        current.append(key)
        size += bytes_
        if size >= budget:
            batches.append(current)
            current, size = [], 0
    if current:
        batches.append(current)
    return batches


@dataclass
class _DatasetBatch:
    """One dataset's outcome for one batch of partitions, ready to write."""

    name: str
    landed: pd.DataFrame
    rejected: pd.DataFrame
    stats: dict[str, PartitionStats]
    rule_rows: list[tuple]
    partial: DatasetResult
    started: datetime


def _process_batch(
    source_name: str,
    batch: list[str],
    landing_dir: Path,
    registry: dict[str, dict[str, str]],
    run_id: str,
) -> list[_DatasetBatch]:
    """Read, normalise and enforce one batch (no lake access: runs in a worker process)."""
    source = SOURCES_BY_NAME[source_name]
    contracts = {name: load_contract(name) for name in source.datasets}
    started = datetime.now(UTC)
    warnings: list[str] = []
    notes: list[str] = []
    collected = _collect(source, batch, landing_dir, contracts, registry, warnings, notes)
    out: list[_DatasetBatch] = []
    parent_rejects: set[tuple[str, int]] | None = None
    for name in source.datasets:
        partial = DatasetResult(name, contracts[name].table)
        is_child = name != source.dataset
        if not is_child:
            partial.warnings = warnings
            partial.notes = notes
        landed, rejected, stats, rejected_keys, rule_rows = _enforce_dataset(
            contracts[name],
            collected[name],
            parent_rejects if is_child else None,
            source.dataset if is_child else None,
            partial,
            run_id,
            batch,
        )
        if not is_child:
            parent_rejects = rejected_keys
        out.append(_DatasetBatch(name, landed, rejected, stats, rule_rows, partial, started))
    return out


def _merge_partial(result: DatasetResult, partial: DatasetResult) -> None:
    for name, outcome in partial.rules.items():
        _add_rule(result.rules, name, outcome)
    for reason, n in partial.top_reasons.items():
        result.top_reasons[reason] = result.top_reasons.get(reason, 0) + n
    result.warnings.extend(partial.warnings)
    result.notes.extend(partial.notes)
    result.typed_records += partial.typed_records


#: the worker processes of this process's ingestion, kept from one source to the next: each
#: is a new interpreter that imports pandas, DuckDB and the contracts before its first batch
_pool: tuple[tuple[Any, ...], ProcessPoolExecutor] | None = None


def _pool_key(workers: int) -> tuple[Any, ...]:
    """What a worker inherits when it starts: a pool started under other settings (another
    lake, typed reads off, another contract engine) is not reused."""
    settings = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("ORDERTOWER_")))
    return (workers, os.getcwd(), settings)


def _exit_with_parent(parent: int) -> None:
    """In a worker: end the process when the process that started it is gone.

    A worker waits for its next batch on a pipe it also holds open itself, so it would wait
    for ever once its parent died without stopping it: killed, or ended by ``os._exit`` (a
    forked step process), where no ``atexit`` hook runs."""
    import threading
    import time

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _workers_pool(workers: int) -> ProcessPoolExecutor:
    global _pool
    key = _pool_key(workers)
    if _pool is not None and _pool[0] == key and not getattr(_pool[1], "_broken", False):
        return _pool[1]
    shutdown_workers()
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=context,
        initializer=_exit_with_parent,
        initargs=(os.getpid(),),
    )
    _pool = (key, pool)
    return pool


@atexit.register
def shutdown_workers() -> None:
    """Stop the ingestion worker processes (they start again when a source needs them)."""
    global _pool
    if _pool is not None:
        _pool[1].shutdown(wait=True, cancel_futures=True)
        _pool = None


def _outcomes(
    source: Source,
    batches: list[list[str]],
    landing_dir: Path,
    registry: dict[str, dict[str, str]],
    run_id: str,
    workers: int,
) -> _Ready | Generator[list[_DatasetBatch], None, None]:
    """Batch outcomes as they are ready: in worker processes when there is more than one batch.

    Parsing and validation are CPU-bound Python; the lake takes one writer, so workers only
    compute and this process writes, batch by batch, as results arrive. The batches are
    handed to the workers before this returns, so the caller's own lake work overlaps them.
    The workers stay up for the next source (:func:`shutdown_workers` stops them; they stop
    with the process).
    """
    if workers <= 1 or len(batches) <= 1:
        return (
            _process_batch(source.name, batch, landing_dir, registry, run_id) for batch in batches
        )
    pool = _workers_pool(workers)
    futures = [
        pool.submit(_process_batch, source.name, batch, landing_dir, registry, run_id)
        for batch in batches
    ]
    return _Ready(futures)


class _Ready:
    """Batch outcomes in the order the workers finish them; ``close`` cancels the batches no
    worker has started (a failed batch or a stopped run: the source's others are not wanted)."""

    def __init__(self, futures: list[Future]) -> None:
        self.futures = futures

    def __iter__(self) -> Iterator[list[_DatasetBatch]]:
        for future in as_completed(self.futures):
            yield future.result()

    def close(self) -> None:
        for future in self.futures:
            future.cancel()


def ingest_source(
    source: Source,
    partitions: list[str],
    con: duckdb.DuckDBPyConnection,
    landing_dir: Path,
    run_id: str,
    workers: int | None = None,
) -> dict[str, DatasetResult]:
    """Land ``partitions`` of ``source`` (``["__all__"]`` for unpartitioned sources)."""
    contracts = {name: load_contract(name) for name in source.datasets}
    registry = carrier_registry(con) if source.file_format == "carrier" else {}
    workers = get_settings().ingest_workers if workers is None else workers
    batches = _batches(source, landing_dir, partitions, workers)
    # the workers start on the batches while this process gets the lake's tables ready
    outcomes = _outcomes(source, batches, landing_dir, registry, run_id, workers)
    try:
        ensure_ops_tables(con)
        for contract in contracts.values():
            ensure_raw_table(con, contract)
        register_datasets(con, source, contracts)
        return _land(con, contracts, source, outcomes, run_id)
    finally:
        outcomes.close()


def _land(
    con: duckdb.DuckDBPyConnection,
    contracts: dict[str, Contract],
    source: Source,
    outcomes: Iterable[list[_DatasetBatch]],
    run_id: str,
) -> dict[str, DatasetResult]:
    """Write each batch's datasets as the batch arrives, in one transaction."""
    results = {name: DatasetResult(name, contracts[name].table) for name in source.datasets}
    for outcome in outcomes:
        con.execute("begin transaction")
        try:
            for part in outcome:
                _write(
                    con,
                    contracts[part.name],
                    sorted(part.stats),
                    part.landed,
                    part.rejected,
                    part.stats,
                    run_id,
                    part.started,
                    part.rule_rows,
                )
            con.execute("commit")
        except BaseException:
            con.execute("rollback")
            raise
        for part in outcome:
            batch = sorted(part.stats)
            result = results[part.name]
            _merge_partial(result, part.partial)
            result.partitions.update(part.stats)
            log.info(
                "%s %s..%s: %d received, %d landed, %d quarantined",
                part.name,
                batch[0],
                batch[-1],
                sum(st.received for st in part.stats.values()),
                len(part.landed),
                len(part.rejected),
            )
    return results
