"""The live stream's health: classified lake failures, bounded retries, heartbeats, assessment.

``ordertower stream`` must never stall silently. Every lake error of a micro-batch is
**classified** (:func:`classify`):

* **transient**: the catalog is locked or busy, a concurrent commit conflicted, the catalog
  server dropped the connection, memory ran short. Retried on a fresh connection with capped
  exponential back-off, within a budget (:class:`RetryPolicy`: attempts and seconds);
* **permanent**: the disk is full (``ENOSPC``/``EFBIG``/"No space left", or an ambiguous commit
  failure while the lake's file system has almost no free space), an I/O error, a corrupt file
  (Parquet or catalog), a schema mismatch (DuckDB Binder / Catalog / Conversion errors). Not
  retried: the batch is dead-lettered, the failure recorded and the consumer stops;
* **unknown**: anything else. Retried like a transient error; when the budget is spent it is
  permanent (``retry_budget_exhausted``), so no error can loop for ever.

Failures are recorded in ``ops.stream_failures``; when the lake itself is what failed, in the
local file ``$ORDERTOWER_HOME/ops/stream_failures.jsonl`` (which the Dagster sensor reads too).

Heartbeats (:class:`Heartbeat`): a small JSON file per consumer under
``$ORDERTOWER_HOME/ops/stream_heartbeat/``, replaced every ``file_every_s`` seconds (10 s) by
the consume loop itself (a consumer stuck in a lake call stops beating, which is the point), and
a row of ``ops.stream_heartbeat`` written at start, stop and failure and, while no batch commits,
every ``lake_every_s`` seconds (60 s). A committed batch (``ops.stream_batches``) counts as a
beat, so a busy consumer adds no snapshot of its own; an idle one adds one a minute, which the
lake maintenance's snapshot expiry removes. :func:`assess` turns all of it into a verdict.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import shutil
import socket
import time
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from ordertower import lake as lake_mod
from ordertower.redact import redact
from ordertower.settings import Settings, get_settings

log = logging.getLogger("ordertower.stream")

#: ``ordertower stream`` exits with this code after a permanent lake failure (docs/streaming.md)
EXIT_LAKE_FAILURE = 3

TRANSIENT, PERMANENT, UNKNOWN = "transient", "permanent", "unknown"

#: a failed write while the lake's file system has less free space than this is "disk full":
#: SQLite reports a full disk during a DuckLake commit only as a failed ROLLBACK
LOW_SPACE_BYTES = 64 * 1024 * 1024

_TRANSIENT_TEXT = {
    "locked": ("database is locked", "locked", "busy"),
    "conflict": ("conflict", "could not serialize", "deadlock detected"),
    "catalog_connection": (
        "server closed the connection",
        "could not connect",
        "connection refused",
        "connection reset",
        "terminating connection",
    ),
}
_DISK_FULL_TEXT = (
    "no space left",
    "disk is full",
    "disk full",
    "file too large",
    "quota exceeded",
    "database or disk is full",
)
_CORRUPT_TEXT = (
    "corrupt",
    "malformed",
    "magic bytes",
    "not a parquet file",
    "to be a parquet file",
    "invalid parquet",
    "checksum",
    "truncated",
)
_IO_ERRNOS = {errno.EIO, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOENT}
_FULL_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}


@dataclass(frozen=True)
class Classified:
    failure_class: str  #: transient | permanent | unknown
    kind: str  #: locked, conflict, disk_full, io_error, corrupt_file, schema_mismatch, ...

    @property
    def retryable(self) -> bool:
        return self.failure_class != PERMANENT


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    while exc is not None and exc not in out and len(out) < 5:
        out.append(exc)
        exc = exc.__cause__ or exc.__context__
    return out


def lake_paths(settings: Settings | None = None) -> list[str]:
    """The local directories the lake writes to (catalog file's folder, data path)."""
    settings = settings or get_settings()
    paths = []
    if settings.catalog_kind == "sqlite":
        paths.append(str(Path(settings.catalog).parent))
    if "://" not in settings.data_path:
        paths.append(settings.data_path)
    return paths


def low_space(paths: Iterable[str], threshold: int = LOW_SPACE_BYTES) -> str | None:
    """The first path whose file system has less than ``threshold`` bytes free, or None."""
    for path in paths:
        probe = Path(path)
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        try:
            free = shutil.disk_usage(probe).free
        except OSError:
            continue
        if free < threshold:
            return f"{path}: {free} bytes free"
    return None


def classify(exc: BaseException, paths: Iterable[str] | None = None) -> Classified:
    """Which kind of lake failure ``exc`` is (the exception, its cause and context)."""
    chain = _chain(exc)
    text = " | ".join(str(e) for e in chain).lower()
    for e in chain:
        if isinstance(e, OSError) and e.errno in _FULL_ERRNOS:
            return Classified(PERMANENT, "disk_full")
    if any(t in text for t in _DISK_FULL_TEXT):
        return Classified(PERMANENT, "disk_full")
    for kind, needles in _TRANSIENT_TEXT.items():
        if any(t in text for t in needles):
            return Classified(TRANSIENT, kind)
    # a full disk the catalog reported only as a failed commit/rollback: look at the disks
    if low_space(paths if paths is not None else lake_paths()):
        return Classified(PERMANENT, "disk_full")
    if any(t in text for t in _CORRUPT_TEXT):
        return Classified(PERMANENT, "corrupt_file")
    for e in chain:
        if isinstance(e, duckdb.BinderException | duckdb.CatalogException):
            return Classified(PERMANENT, "schema_mismatch")
        if isinstance(e, duckdb.ConversionException | duckdb.ConstraintException):
            return Classified(PERMANENT, "schema_mismatch")
        if isinstance(e, OSError) and e.errno in _IO_ERRNOS:
            return Classified(PERMANENT, "io_error")
        if isinstance(e, duckdb.IOException) or "input/output error" in text:
            return Classified(PERMANENT, "io_error")
        if isinstance(e, duckdb.OutOfMemoryException):
            return Classified(UNKNOWN, "out_of_memory")
    if "schema" in text and "mismatch" in text:
        return Classified(PERMANENT, "schema_mismatch")
    return Classified(UNKNOWN, type(exc).__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """How long a transient (or unknown) lake error is retried before it counts as permanent."""

    attempts: int = 8  #: tries in all, the first included
    seconds: float = 60.0  #: and no retry starts later than this after the first failure
    first_delay: float = 0.2
    max_delay: float = 10.0
    #: a *locked* catalog is another writer at work (a materialisation's dbt build holds the
    #: SQLite catalog for minutes): waited out for this long, whatever the count of tries; the
    #: broker keeps the messages meanwhile
    locked_seconds: float = 1800.0

    def spent(self, kind: str, attempt: int, elapsed: float, delay: float) -> bool:
        """Whether the budget is spent before try ``attempt + 1`` (``elapsed``: seconds since
        the first failure)."""
        if kind == "locked":
            return elapsed + delay > self.locked_seconds
        return attempt >= self.attempts or elapsed + delay > self.seconds

    def delay(self, attempt: int) -> float:
        """Back-off before try ``attempt + 1`` (``attempt`` counts from 1)."""
        return min(self.first_delay * 2 ** (attempt - 1), self.max_delay)


class LakeFailure(RuntimeError):
    """A lake operation of the stream failed for good (permanent, or out of retry budget)."""

    def __init__(
        self, classified: Classified, detail: str, attempts: int, stage: str = "land"
    ) -> None:
        super().__init__(f"{classified.kind}: {detail}")
        self.classified = classified
        self.detail = detail
        self.attempts = attempts
        self.stage = stage

    @property
    def kind(self) -> str:
        return self.classified.kind

    @property
    def reason(self) -> str:
        """The dead letters' ``x-reason``: names the failure, bounded, redacted."""
        return (
            f"lake {self.stage} failed ({self.kind}, after {self.attempts} tries): {self.detail}"[
                :500
            ]
        )


def short(exc: BaseException) -> str:
    """One redacted line of an exception (never a traceback, never a password)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return redact(f"{type(exc).__name__}: {text}")[:1000]


# ------------------------------------------------------------------------------------ files


def ops_dir(settings: Settings | None = None) -> Path:
    return (settings or get_settings()).home / "ops"


def failures_file(settings: Settings | None = None) -> Path:
    return ops_dir(settings) / "stream_failures.jsonl"


def heartbeat_dir(settings: Settings | None = None) -> Path:
    return ops_dir(settings) / "stream_heartbeat"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _ts(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


FAILURE_COLUMNS = (
    "failure_id",
    "failed_at",
    "consumer_id",
    "host",
    "pid",
    "queue",
    "stage",
    "batch_id",
    "messages",
    "failure_class",
    "kind",
    "attempts",
    "message",
)


def record_failure(failure: dict[str, Any], settings: Settings | None = None) -> str:
    """Store one failure row: in ``ops.stream_failures`` when the lake takes it, else in the
    local JSON-lines file. Returns where it went (``lake``, ``file`` or ``nowhere``)."""
    row = {c: failure.get(c) for c in FAILURE_COLUMNS}
    try:
        con = lake_mod.connect(settings=settings, retries=3)
        try:
            con.execute(
                f"insert into ops.stream_failures ({', '.join(FAILURE_COLUMNS)}) "
                f"values ({', '.join('?' for _ in FAILURE_COLUMNS)})",
                [row[c] for c in FAILURE_COLUMNS],
            )
        finally:
            con.close()
        return "lake"
    except Exception as exc:  # noqa: BLE001 - the lake is what failed: fall back to a file
        log.warning("cannot record the failure in the lake (%s); writing it locally", short(exc))
    path = failures_file(settings)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps({**row, "failed_at": _iso(row["failed_at"])}) + "\n"
        with open(path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        return "file"
    except OSError as exc:
        log.error("cannot record the failure anywhere (%s): %s", short(exc), row)
        return "nowhere"


def read_failures(
    con: duckdb.DuckDBPyConnection | None, settings: Settings | None = None
) -> list[dict[str, Any]]:
    """Every recorded failure, from the lake and the local file (deduplicated by id)."""
    rows: dict[str, dict[str, Any]] = {}
    if con is not None and lake_mod.table_exists(con, "ops", "stream_failures"):
        frame = con.execute(
            f"select {', '.join(FAILURE_COLUMNS)} from ops.stream_failures"
        ).fetchall()
        for values in frame:
            rows[values[0]] = dict(zip(FAILURE_COLUMNS, values, strict=True))
    path = failures_file(settings)
    if path.exists():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            with contextlib.suppress(ValueError, TypeError):
                item = json.loads(line)
                item["failed_at"] = _ts(item.get("failed_at"))
                rows.setdefault(item["failure_id"], item)
    return sorted(rows.values(), key=lambda r: r["failed_at"] or datetime.min.replace(tzinfo=UTC))


# ------------------------------------------------------------------------------- heartbeat

HEARTBEAT_COLUMNS = (
    "consumer_id",
    "host",
    "pid",
    "queue",
    "state",
    "started_at",
    "last_beat_at",
    "last_batch_at",
    "last_message_at",
    "last_compact_at",
    "batches",
    "received",
    "landed",
    "dead_lettered",
    "lake_retries",
)
#: states a consumer reports; ``stopped`` and ``failed`` are final
RUNNING_STATES = ("starting", "running", "retrying")


@dataclass
class Heartbeat:
    """One consumer's liveness, beaten by the consume loop (file) and now and then the lake."""

    queue: str
    file_every_s: float = 10.0
    lake_every_s: float = 60.0
    settings: Settings | None = None
    consumer_id: str = field(
        default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    )
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    state: str = "starting"
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    last_batch_at: datetime | None = None
    last_message_at: datetime | None = None
    last_compact_at: datetime | None = None
    counts: dict[str, int] = field(default_factory=dict)
    _file_at: float = field(default=-1e9, repr=False)
    _lake_at: float = field(default=-1e9, repr=False)

    def __post_init__(self) -> None:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in self.queue)
        self.path = heartbeat_dir(self.settings) / f"{safe}__{self.consumer_id}.json"

    def row(self, now: datetime | None = None) -> dict[str, Any]:
        now = now or datetime.now(UTC)
        c = self.counts
        return {
            "consumer_id": self.consumer_id,
            "host": self.host,
            "pid": self.pid,
            "queue": self.queue,
            "state": self.state,
            "started_at": self.started_at,
            "last_beat_at": now,
            "last_batch_at": self.last_batch_at,
            "last_message_at": self.last_message_at,
            "last_compact_at": self.last_compact_at,
            "batches": int(c.get("batches", 0)),
            "received": int(c.get("received", 0)),
            "landed": int(c.get("landed", 0)),
            "dead_lettered": int(c.get("dead_lettered", 0)),
            "lake_retries": int(c.get("lake_retries", 0)),
        }

    def batch_committed(self) -> None:
        """A committed batch is a lake beat (``ops.stream_batches``): no extra write needed."""
        self.last_batch_at = datetime.now(UTC)
        self._lake_at = time.monotonic()

    def file_due(self) -> bool:
        return time.monotonic() - self._file_at >= self.file_every_s

    def beat_file(self, force: bool = False) -> None:
        """Replace the heartbeat file (atomically) when ``file_every_s`` has passed."""
        now = time.monotonic()
        if not force and now - self._file_at < self.file_every_s:
            return
        self._file_at = now
        row = {k: (_iso(v) if isinstance(v, datetime) else v) for k, v in self.row().items()}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(row), encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError as exc:  # a full disk: the beat goes stale, which is what the sensor sees
            log.warning("cannot write the heartbeat file %s: %s", self.path, short(exc))

    def lake_skipped(self) -> None:
        self._lake_at = time.monotonic()

    def lake_due(self) -> bool:
        return self.lake_every_s > 0 and time.monotonic() - self._lake_at >= self.lake_every_s

    def beat_lake(self, con: duckdb.DuckDBPyConnection) -> None:
        """Upsert this consumer's row of ``ops.stream_heartbeat`` (one snapshot)."""
        row = self.row()
        con.execute("begin transaction")
        try:
            con.execute(
                "delete from ops.stream_heartbeat where consumer_id = ?", [self.consumer_id]
            )
            con.execute(
                f"insert into ops.stream_heartbeat ({', '.join(HEARTBEAT_COLUMNS)}) "
                f"values ({', '.join('?' for _ in HEARTBEAT_COLUMNS)})",
                [row[c] for c in HEARTBEAT_COLUMNS],
            )
            con.execute("commit")
        except BaseException:
            with contextlib.suppress(duckdb.Error):
                con.execute("rollback")
            raise
        self._lake_at = time.monotonic()


def read_heartbeats(
    con: duckdb.DuckDBPyConnection | None, settings: Settings | None = None
) -> list[dict[str, Any]]:
    """Every consumer's latest beat, from the files and the lake (the fresher of the two)."""
    beats: dict[str, dict[str, Any]] = {}

    def take(row: dict[str, Any]) -> None:
        for key in ("started_at", "last_beat_at", "last_batch_at", "last_message_at"):
            row[key] = _ts(row.get(key))
        row["last_compact_at"] = _ts(row.get("last_compact_at"))
        old = beats.get(row["consumer_id"])
        if old is None or (row["last_beat_at"] or datetime.min.replace(tzinfo=UTC)) > (
            old["last_beat_at"] or datetime.min.replace(tzinfo=UTC)
        ):
            beats[row["consumer_id"]] = row

    if con is not None and lake_mod.table_exists(con, "ops", "stream_heartbeat"):
        for values in con.execute(
            f"select {', '.join(HEARTBEAT_COLUMNS)} from ops.stream_heartbeat"
        ).fetchall():
            take(dict(zip(HEARTBEAT_COLUMNS, values, strict=True)))
    folder = heartbeat_dir(settings)
    if folder.is_dir():
        for path in folder.glob("*.json"):
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                take(json.loads(path.read_text(encoding="utf-8")))
    return list(beats.values())


def prune_heartbeat_files(settings: Settings | None = None, older_than_days: float = 7) -> int:
    """Remove heartbeat files of consumers gone for more than ``older_than_days``."""
    folder = heartbeat_dir(settings)
    if not folder.is_dir():
        return 0
    cutoff = time.time() - older_than_days * 86400
    removed = 0
    for path in folder.glob("*.json"):
        with contextlib.suppress(OSError):
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
    return removed


# ------------------------------------------------------------------------------ assessment


@dataclass
class Verdict:
    healthy: bool
    problems: list[str]
    queues: dict[str, dict[str, Any]]
    open_failures: list[dict[str, Any]]
    seen: bool  #: any consumer or failure was ever recorded here
    #: one stable code per problem (``<queue>:dead``, ``failure:<id>``, ...)
    codes: list[str] = field(default_factory=list)

    @property
    def signature(self) -> str:
        """Changes when the set of problems changes (the sensor reports on change)."""
        return hashlib.sha1("\n".join(sorted(self.codes)).encode()).hexdigest()[:16]

    def metadata(self) -> dict[str, Any]:
        return {
            "problems": "\n".join(self.problems) or "none",
            "queues": json.dumps(self.queues, default=str, indent=1),
            "open failures": len(self.open_failures),
        }

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _last_batches(con: duckdb.DuckDBPyConnection | None) -> dict[str, datetime]:
    if con is None or not lake_mod.table_exists(con, "ops", "stream_batches"):
        return {}
    return {
        q: _ts(t)
        for q, t in con.execute(
            "select queue, max(committed_at) from ops.stream_batches group by queue"
        ).fetchall()
    }


def assess(
    con: duckdb.DuckDBPyConnection | None,
    now: datetime | None = None,
    stale_after_s: float = 90.0,
    queue_depths: dict[str, int | None] | None = None,
    settings: Settings | None = None,
) -> Verdict:
    """Is the stream healthy? Per queue: the freshest consumer beat (file, lake row or committed
    batch) is younger than ``stale_after_s`` while a consumer should be running (its last state
    is not ``stopped``, or messages are waiting), the queue is not stalled (messages waiting,
    no batch for ``stale_after_s`` while the consumer beats), and no permanent failure is open
    (a failure is closed by a batch the queue committed after it; a compaction failure by a
    later compaction)."""
    now = now or datetime.now(UTC)
    stale = timedelta(seconds=stale_after_s)
    beats = read_heartbeats(con, settings)
    failures = read_failures(con, settings)
    batches = _last_batches(con)
    depths = dict(queue_depths or {})
    queues: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    codes: list[str] = []
    names = {b["queue"] for b in beats} | {f["queue"] for f in failures} | set(depths)
    for queue in sorted(names):
        mine = [b for b in beats if b["queue"] == queue]
        latest = max(mine, key=lambda b: b["last_beat_at"], default=None)
        last_batch = max(
            [t for t in [batches.get(queue), *(b["last_batch_at"] for b in mine)] if t],
            default=None,
        )
        alive_at = max(
            [t for t in [last_batch, *(b["last_beat_at"] for b in mine)] if t], default=None
        )
        depth = depths.get(queue)
        state = latest["state"] if latest else None
        info = {
            "consumer": latest["consumer_id"] if latest else None,
            "state": state,
            "last beat": _iso(alive_at),
            "last batch": _iso(last_batch),
            "messages waiting": depth,
        }
        queues[queue] = info
        expected = state in RUNNING_STATES or bool(depth)
        if expected and (alive_at is None or now - alive_at > stale):
            age = "never" if alive_at is None else f"{(now - alive_at).total_seconds():.0f} s ago"
            codes.append(f"{queue}:dead")
            problems.append(
                f"{queue}: consumer {'dead or missing' if state in RUNNING_STATES else 'not running'}"
                f" (last beat {age}, state {state}, {depth if depth is not None else '?'} messages"
                " waiting)"
            )
        elif (
            depth
            and state in RUNNING_STATES
            and latest is not None
            and now - (_max(last_batch, latest["started_at"]) or now) > stale
        ):
            codes.append(f"{queue}:stalled")
            problems.append(
                f"{queue}: consumer stalled ({depth} messages waiting, no batch committed for "
                f"more than {stale_after_s:.0f} s, state {state})"
            )
    open_failures = []
    for f in failures:
        at = f["failed_at"]
        mine = [b for b in beats if b["queue"] == f["queue"]]
        if f["stage"] == "compact":
            closer = _max(*(b["last_compact_at"] for b in mine))
        else:
            closer = _max(batches.get(f["queue"]), *(b["last_batch_at"] for b in mine))
        if at is not None and closer is not None and closer > at:
            continue
        open_failures.append(f)
        codes.append(f"failure:{f['failure_id']}")
        problems.append(
            f"{f['queue']}: permanent lake failure at {_iso(at)} ({f['kind']}, {f['stage']}, "
            f"{f['messages']} messages dead-lettered): {f['message']}"
        )
    return Verdict(
        healthy=not problems,
        problems=problems,
        queues=queues,
        open_failures=open_failures,
        seen=bool(beats or failures),
        codes=codes,
    )


def _max(*values: datetime | None) -> datetime | None:
    return max((v for v in values if v is not None), default=None)
