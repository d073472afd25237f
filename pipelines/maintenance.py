"""Lake upkeep: expire old snapshots, merge small files, delete what nothing references.

DuckLake never deletes anything by itself: every commit is a snapshot kept for time travel,
every micro-batch of the stream is one commit, and merged or replaced Parquet files stay on
disk until someone removes them. :func:`maintain` runs DuckLake's own maintenance functions in
a safe order, each step its own short transaction retried when another writer (the stream,
a materialisation) holds the catalog or commits a conflicting change:

0. ``cleanup``: files scheduled for deletion (merged away, only in expired snapshots) by an
   earlier pass, once all of them are older than ``lake_delete_grace_minutes`` (a query still
   reading them has finished);
1. ``flush``: inlined rows (the stream's micro-batches kept in the catalog) to Parquet;
2. ``thin``: snapshots older than ``lake_dense_hours`` that only the stream or compaction wrote
   are expired, except the last one of each hour (``ducklake_expire_snapshots(versions => ...)``);
   every snapshot a materialisation, dbt, a model or an audited write committed is kept;
3. ``expire``: every snapshot older than ``lake_retention_days`` (the time-travel window);
4. ``merge``: adjacent small files of a table into larger ones (``ducklake_merge_adjacent_files``);
5. ``cleanup`` again, for what is past the grace period by now;
6. ``orphans`` (full pass only): files under the data path the catalog does not know, older than
   the grace period (a writer's files of a commit in flight are younger);
7. ``vacuum`` (full pass, SQLite catalog only): give the catalog file its freed pages back.

Each run's counts before and after (snapshots, data files and bytes, inlined rows, catalog
bytes) and what each step did go to ``ops.lake_maintenance``. The logical content of every
table is unchanged: only history older than the retention and files nothing reads go away.
This module knows no Dagster: ``pipelines/defs/maintenance`` schedules it and the CLI
(``ordertower lake maintain``) runs it by hand.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from ordertower import lake as lake_mod
from ordertower.redact import redact
from ordertower.settings import Settings, get_settings

log = logging.getLogger("ordertower.maintenance")

META = f"__ducklake_metadata_{lake_mod.LAKE_ALIAS}"
MAINTENANCE_TABLE = "ops.lake_maintenance"
MODES = ("light", "full")

#: Tables the live stream writes at every micro-batch (and the CRM sender, and this module's own
#: log): a snapshot that changed only these, or only compacted files, may be thinned.
HIGH_FREQUENCY_TABLES = frozenset(
    {
        "raw.carrier_events_stream",
        "ops.stream_batches",
        "ops.exception_alerts",
        "ops.crm_outbox",
        "ml.shipment_eta_updates",
        "quarantine.rejected_records",
        MAINTENANCE_TABLE,
    }
)
#: ops tables the stream may add (a heartbeat, its failures) count as high-frequency too
_HIGH_FREQUENCY_OPS = re.compile(r"^ops\.(stream_.*|.*heartbeat.*)$")
#: changes that alter a table's rows (thinnable only on a high-frequency table)
_ROW_CHANGES = frozenset(
    {"inserted_into_table", "deleted_from_table", "inlined_insert", "inlined_delete"}
)
#: changes that only rewrite files (the logical content stays): thinnable on any table
_FILE_CHANGES = frozenset({"inline_flush", "merge_adjacent", "rewrite_delete", "compacted_table"})
_CHANGES = re.compile(r"(\w+):(\d+)(?:,(\w+):(\d+))*")

DDL = f"""
create table if not exists {MAINTENANCE_TABLE} (
    run_id varchar not null,
    mode varchar not null,
    status varchar not null,
    started_at timestamptz not null,
    finished_at timestamptz not null,
    retention_days double not null,
    snapshots_before bigint,
    snapshots_after bigint,
    data_files_before bigint,
    data_files_after bigint,
    data_bytes_before bigint,
    data_bytes_after bigint,
    inlined_rows_before bigint,
    inlined_rows_after bigint,
    catalog_bytes_before bigint,
    catalog_bytes_after bigint,
    steps varchar,
    error varchar
)"""


class MaintenanceError(RuntimeError):
    """A maintenance step failed for a reason other than a busy catalog (the message says which)."""


class NoLake(MaintenanceError):
    """There is no lake to maintain yet (and maintenance never creates one)."""


@dataclass(frozen=True)
class Policy:
    """How much history to keep, and how long an unreferenced file waits before deletion."""

    retention: timedelta
    dense: timedelta
    grace: timedelta
    #: older snapshots the stream wrote are thinned to one per bucket of this width
    bucket: timedelta = timedelta(hours=1)

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Policy:
        s = settings or get_settings()
        return cls(
            retention=timedelta(days=s.lake_retention_days),
            dense=timedelta(hours=s.lake_dense_hours),
            grace=timedelta(minutes=s.lake_delete_grace_minutes),
        )

    def scaled(self, factor: float) -> Policy:
        """The same policy on a compressed clock (the bench's simulated days)."""
        return Policy(
            self.retention * factor, self.dense * factor, self.grace * factor, self.bucket * factor
        )


@dataclass
class MaintenanceReport:
    run_id: str
    mode: str
    dry_run: bool
    started_at: datetime
    finished_at: datetime | None = None
    status: str = "running"
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)
    steps: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("started_at", "finished_at"):
            out[key] = out[key].isoformat() if out[key] else None
        return out

    def summary(self) -> str:
        def delta(key: str) -> str:
            b, a = self.before.get(key), self.after.get(key)
            return f"{key} {b:,} -> {a:,}" if b is not None and a is not None else f"{key} -"

        done = ", ".join(
            f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}" for k, v in self.steps.items()
        )
        keys = ("snapshots", "data_files", "data_bytes", "inlined_rows", "catalog_bytes")
        head = f"lake maintenance ({self.mode}{', dry run' if self.dry_run else ''}): {self.status}"
        return f"{head}\n  {'; '.join(delta(k) for k in keys)}\n  steps: {done}" + (
            f"\n  error: {self.error}" if self.error else ""
        )


# ------------------------------------------------------------------------------ measuring


def catalog_bytes(settings: Settings | None = None) -> int | None:
    """Size of the SQLite catalog file (with its WAL); None for a PostgreSQL catalog."""
    s = settings or get_settings()
    if s.catalog_kind != "sqlite":
        return None
    total = 0
    for suffix in ("", "-wal", "-journal"):
        path = Path(s.catalog + suffix)
        if path.exists():
            total += path.stat().st_size
    return total


def lake_stats(con: duckdb.DuckDBPyConnection, settings: Settings | None = None) -> dict[str, Any]:
    """What the catalog tracks (snapshots, data and delete files, inlined rows, files waiting
    for deletion), what the data path holds on disk, and the catalog's size."""
    s = settings or get_settings()
    snapshots = con.execute(f"select count(*) from {META}.ducklake_snapshot").fetchone()[0]
    files, size, live = con.execute(
        f"select count(*), coalesce(sum(file_size_bytes), 0), "
        f"count(*) filter (where end_snapshot is null) from {META}.ducklake_data_file"
    ).fetchone()
    deletes = con.execute(f"select count(*) from {META}.ducklake_delete_file").fetchone()[0]
    scheduled = con.execute(
        f"select count(*) from {META}.ducklake_files_scheduled_for_deletion"
    ).fetchone()[0]
    inlined = 0
    for (name,) in con.execute(
        f"select table_name from {META}.ducklake_inlined_data_tables"
    ).fetchall():
        try:
            inlined += con.execute(
                f'select count(*) from {META}."{name}" where end_snapshot is null'
            ).fetchone()[0]
        except duckdb.Error:  # an inlined table of a dropped table version
            continue
    disk_files = disk_bytes = None
    if not s.data_path.startswith(("s3://", "gs://", "az://")) and Path(s.data_path).exists():
        disk_files = disk_bytes = 0
        for root, _dirs, names in os.walk(s.data_path):
            for name in names:
                disk_files += 1
                disk_bytes += (Path(root) / name).stat().st_size
    return {
        "snapshots": int(snapshots),
        "data_files": int(files),
        "live_data_files": int(live),
        "data_bytes": int(size),
        "delete_files": int(deletes),
        "scheduled_for_deletion": int(scheduled),
        "inlined_rows": int(inlined),
        "files_on_disk": disk_files,
        "bytes_on_disk": disk_bytes,
        "catalog_bytes": catalog_bytes(s),
    }


# ------------------------------------------------------------------------------ thinning


def _high_frequency_table_ids(con: duckdb.DuckDBPyConnection) -> set[int]:
    rows = con.execute(
        f"select t.table_id, s.schema_name || '.' || t.table_name from {META}.ducklake_table t "
        f"join {META}.ducklake_schema s using (schema_id)"
    ).fetchall()
    return {
        int(tid)
        for tid, name in rows
        if name in HIGH_FREQUENCY_TABLES or _HIGH_FREQUENCY_OPS.match(name)
    }


def thinnable(changes: str | None, high_frequency: set[int]) -> bool:
    """A snapshot whose changes are only rows of high-frequency tables or file rewrites."""
    if not changes or not _CHANGES.fullmatch(changes):
        return False  # schema changes, named objects, or nothing recorded: keep
    for part in changes.split(","):
        kind, _, table = part.partition(":")
        if kind in _FILE_CHANGES:
            continue
        if kind not in _ROW_CHANGES or int(table) not in high_frequency:
            return False
    return True


def snapshots_to_thin(con: duckdb.DuckDBPyConnection, policy: Policy, now: datetime) -> list[int]:
    """Stream-only snapshots between the retention and the dense window that are not the last
    snapshot of their hour (bucket). The latest snapshot is never among them."""
    rows = con.execute(
        f"select s.snapshot_id, cast(s.snapshot_time as timestamptz), c.changes_made "
        f"from {META}.ducklake_snapshot s "
        f"left join {META}.ducklake_snapshot_changes c using (snapshot_id) order by 1"
    ).fetchall()
    if not rows:
        return []
    latest = rows[-1][0]
    high_frequency = _high_frequency_table_ids(con)
    oldest, newest = now - policy.retention, now - policy.dense
    width = policy.bucket.total_seconds()
    last_of_bucket: dict[int, int] = {}
    for sid, at, _ in rows:
        last_of_bucket[int(_utc(at).timestamp() // width)] = sid
    keep = set(last_of_bucket.values()) | {latest}
    return [
        sid
        for sid, at, changes in rows
        if oldest <= _utc(at) < newest and sid not in keep and thinnable(changes, high_frequency)
    ]


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# ------------------------------------------------------------------------------ running


#: how a commit another writer refused can surface besides "locked"/"conflict": a failed fetch
#: from the catalog, or DuckLake's own clean-up of a step whose catalog transaction the lock
#: aborted ("Failed to delete flushed inlined data ...: Current transaction is aborted")
_BUSY_TEXT = ("unsuccessful query result", "transaction is aborted")


def _busy(exc: BaseException) -> bool:
    text = str(exc).lower()
    return lake_mod.transient(exc) or any(t in text for t in _BUSY_TEXT)


def _retry(step: str, fn: Callable[[], Any], attempts: int = 30) -> Any:
    """Run a step; a locked catalog or a conflicting commit (the stream wrote meanwhile) is
    retried with back-off, anything else fails the step."""
    delay = 0.1
    for attempt in range(attempts):
        try:
            return fn()
        except (duckdb.Error, lake_mod.LakeError) as exc:
            busy = _busy(exc)
            if not busy or attempt == attempts - 1:
                raise MaintenanceError(f"{step}: {redact(str(exc).splitlines()[0])}") from exc
            log.info("%s: lake busy (%s); retrying in %.1fs", step, redact(exc), delay)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
    raise AssertionError("unreachable")  # pragma: no cover


def _call(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> list[tuple]:
    """One maintenance statement; a failed one leaves no open transaction behind, so the retry
    starts clean instead of hitting "Current transaction is aborted"."""
    try:
        return con.execute(sql, params or []).fetchall()
    except duckdb.Error:
        # no transaction open (auto-commit already rolled it back) is fine too
        with contextlib.suppress(duckdb.Error):
            con.execute("rollback")
        raise


def maintain(
    mode: str = "full",
    dry_run: bool = False,
    settings: Settings | None = None,
    policy: Policy | None = None,
    now: datetime | None = None,
    record: bool = True,
) -> MaintenanceReport:
    """One maintenance pass over the lake (see the module's docstring for the steps).

    ``light`` (hourly): flush, thin, expire, merge, cleanup. ``full`` (nightly): also orphaned
    files and the SQLite catalog's free pages. ``dry_run`` changes nothing and lists what would
    go. ``now`` is the clock the retention is measured on (tests and the bench move it).
    Raises :class:`MaintenanceError` when a step fails; the failure is recorded first.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    s = settings or get_settings()
    if not lake_mod.exists(s):
        raise NoLake(
            f"no lake at {s.catalog}: nothing to maintain "
            "(run `make demo` or `ordertower materialize` first)"
        )
    policy = policy or Policy.from_settings(s)
    report = MaintenanceReport(uuid.uuid4().hex, mode, dry_run, datetime.now(UTC))
    con = _retry("connect", lambda: lake_mod.connect(settings=s))
    try:
        report.before = lake_stats(con, s)
        try:
            _run_steps(con, report, mode, dry_run, s, policy, now)
            report.status = "dry run" if dry_run else "ok"
        except MaintenanceError as exc:
            report.status, report.error = "failed", str(exc)
        report.after = lake_stats(con, s)
    finally:
        con.close()
    if mode == "full" and not dry_run and report.status == "ok" and s.catalog_kind == "sqlite":
        report.steps["vacuum_bytes_freed"] = _vacuum_sqlite(s)
        report.after["catalog_bytes"] = catalog_bytes(s)
    report.finished_at = datetime.now(UTC)
    if record and not dry_run:
        _retry("record", lambda: _record(report, policy, s))
    log.info("%s", report.summary())
    if report.error:
        raise MaintenanceError(report.error)
    return report


def _run_steps(
    con: duckdb.DuckDBPyConnection,
    report: MaintenanceReport,
    mode: str,
    dry_run: bool,
    s: Settings,
    policy: Policy,
    now: datetime | None,
) -> None:
    alias = lake_mod.LAKE_ALIAS
    clock = now or datetime.now(UTC)
    steps = report.steps
    # files the previous pass merged away or expired, once past the grace period
    steps["deleted_files"] = _cleanup(con, clock - policy.grace, dry_run)
    if dry_run:
        steps["flush_rows"] = report.before["inlined_rows"]  # would be written out
    else:
        flushed = _retry(
            "flush", lambda: _call(con, f"call ducklake_flush_inlined_data('{alias}')")
        )
        steps["flush_rows"] = sum(int(r[2]) for r in flushed)

    thin = _retry("thin", lambda: snapshots_to_thin(con, policy, clock))
    if thin and not dry_run:
        # in chunks: the list is one SQL parameter
        for i in range(0, len(thin), 5000):
            chunk = thin[i : i + 5000]
            _retry(
                "thin",
                lambda c=chunk: _call(
                    con, f"call ducklake_expire_snapshots('{alias}', versions => ?)", [c]
                ),
            )
    steps["thinned_snapshots"] = len(thin)

    # by versions: on the SQLite catalog ``older_than`` compares the times as text and expires
    # (and clean-up deletes) far more than asked; the catalog's times are read as timestamps
    expired = _retry("expire", lambda: _older_than(con, clock - policy.retention))
    if expired and not dry_run:
        for i in range(0, len(expired), 5000):
            chunk = expired[i : i + 5000]
            _retry(
                "expire",
                lambda c=chunk: _call(
                    con, f"call ducklake_expire_snapshots('{alias}', versions => ?)", [c]
                ),
            )
    steps["expired_snapshots"] = len(expired)

    if dry_run:
        steps["merged_files"] = "skipped (dry run)"
    else:
        merged = _retry(
            "merge", lambda: _call(con, f"call ducklake_merge_adjacent_files('{alias}')")
        )
        steps["merged_files"] = sum(int(r[2]) for r in merged)
        steps["merged_into"] = sum(int(r[3]) for r in merged)

    if not dry_run:  # what this pass merged away waits for the grace period (a later pass)
        steps["deleted_files"] += _cleanup(con, clock - policy.grace, dry_run)

    if mode == "full":
        orphans = _retry(
            "orphans",
            lambda: _call(
                con,
                f"call ducklake_delete_orphaned_files('{alias}', older_than => ?, dry_run => ?)",
                [clock - policy.grace, dry_run],
            ),
        )
        steps["orphaned_files"] = len(orphans)


def _older_than(con: duckdb.DuckDBPyConnection, cutoff: datetime) -> list[int]:
    """Snapshots taken before ``cutoff``, never the latest."""
    rows = con.execute(
        f"select snapshot_id, cast(snapshot_time as timestamptz) < ? "
        f"from {META}.ducklake_snapshot order by 1",
        [cutoff],
    ).fetchall()
    return [sid for sid, old in rows[:-1] if old]


def _cleanup(con: duckdb.DuckDBPyConnection, cutoff: datetime, dry_run: bool) -> int:
    """Delete the files scheduled for deletion, when every one of them was scheduled before
    ``cutoff`` (``ducklake_cleanup_old_files``'s own ``older_than`` is unreliable on SQLite, see
    :func:`_older_than`); otherwise wait for a later pass. Returns the number deleted."""
    waiting, young = con.execute(
        f"select count(*), count(*) filter (where cast(schedule_start as timestamptz) >= ?) "
        f"from {META}.ducklake_files_scheduled_for_deletion",
        [cutoff],
    ).fetchone()
    if not waiting or young:
        return 0
    alias = lake_mod.LAKE_ALIAS
    deleted = _retry(
        "cleanup",
        lambda: _call(
            con,
            f"call ducklake_cleanup_old_files('{alias}', cleanup_all => true, dry_run => ?)",
            [dry_run],
        ),
    )
    return len(deleted)


def _vacuum_sqlite(s: Settings) -> int:
    """VACUUM the SQLite catalog (expired snapshots free pages that SQLite keeps otherwise).
    Needs a moment without writers; skipped with a warning when the stream keeps it busy."""
    before = catalog_bytes(s) or 0
    try:
        # a short busy timeout: while VACUUM waits for its exclusive lock SQLite refuses every
        # new reader (a pending lock), so a long wait would stall the live stream instead
        with sqlite3.connect(s.catalog, timeout=1.0) as cat:
            cat.execute("vacuum")
    except sqlite3.Error as exc:
        log.warning("catalog vacuum skipped: %s", exc)
        return 0
    return max(before - (catalog_bytes(s) or 0), 0)


def _record(report: MaintenanceReport, policy: Policy, s: Settings) -> None:
    with lake_mod.lake(settings=s) as con:
        con.execute(DDL)
        _insert(con, report, policy)


def _insert(con: duckdb.DuckDBPyConnection, report: MaintenanceReport, policy: Policy) -> None:
    b, a = report.before, report.after
    con.execute(
        f"insert into {MAINTENANCE_TABLE} values "
        "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            report.run_id,
            report.mode,
            report.status,
            report.started_at,
            report.finished_at,
            policy.retention.total_seconds() / 86400,
            b.get("snapshots"),
            a.get("snapshots"),
            b.get("data_files"),
            a.get("data_files"),
            b.get("data_bytes"),
            a.get("data_bytes"),
            b.get("inlined_rows"),
            a.get("inlined_rows"),
            b.get("catalog_bytes"),
            a.get("catalog_bytes"),
            json.dumps(report.steps, default=str),
            report.error,
        ],
    )
