"""The one data-access module of the dashboards.

Every page reads the lake through the functions here and nowhere else, so that:

* there is exactly one read-only connection per lake and process (``st.cache_resource``),
  shared by all sessions; each query runs on its own cursor because a DuckDB connection must
  not be used by two threads (Streamlit sessions) at once;
* every aggregation is SQL in this module, parameterised (never string-formatted with user
  input), and its result is cached (``st.cache_data``) so reruns caused by
  widget clicks do not hit the lake again, and dropped as soon as the lake has a newer
  snapshot (:func:`drop_stale_results`, at most once a minute);
* a lake that does not exist yet, or lacks the tables a page needs, surfaces as one exception
  type, :class:`DataUnavailable`, that pages turn into a friendly hint instead of a traceback;
* every public function declares the permission it needs (``@_needs``), checked against the
  signed-in identity (:mod:`dashboards.auth`) before the query runs and before a cached result
  is served: the check sits in the read path, not only in the page. A denial is
  :class:`NotAllowed` (a :class:`DataUnavailable`).

Cached functions take only plain hashable arguments (tuples, dates, strings) and never create
widgets. Their results are shared: callers must treat the returned DataFrames as read-only
(use ``.assign``/``.copy`` before changing them).

Partition keys are the Dagster daily keys (``YYYY-MM-DD``) or ``__all__`` for unpartitioned
datasets (reference snapshots). Date filters apply to daily partitions; ``__all__`` rows are
always kept, because an unpartitioned snapshot belongs to every day.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import re
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import duckdb
import pandas as pd
import streamlit as st

from dashboards import auth
from ordertower.access import AccessDenied
from ordertower.lake import LAKE_ALIAS, LakeError, connect
from ordertower.redact import redact
from ordertower.settings import get_settings

UNPARTITIONED = "__all__"
#: Cache lifetime of query results. A result is dropped earlier when the lake gets a new
#: snapshot (see :func:`drop_stale_results`): an idle lake keeps every page warm, a lake being
#: written shows the new data within :data:`REFRESH_SECONDS`.
CACHE_TTL_SECONDS = 30 * 60
#: The least time between two cache drops while the lake keeps changing (the stream commits
#: every few seconds; the marts change on a dbt run).
REFRESH_SECONDS = 60
#: The hint pages show when the lake or its ops tables are not there yet.
F = TypeVar("F", bound=Callable[..., Any])

DEMO_HINT = "Run `make demo` to simulate source files and ingest them into the lake."


class DataUnavailable(RuntimeError):
    """The lake, or a table a page needs, does not exist yet (nothing ingested so far)."""


class NotAllowed(DataUnavailable):
    """The signed-in identity (or nobody) may not read this; the message says why."""


class DataDamaged(DataUnavailable):
    """A data file of the lake is missing or damaged (truncated, overwritten): the message names
    the file and its table and says what to do; pages show it as an error, not a hint."""


#: Every message of :class:`DataDamaged` starts with this (pages tell it from a hint by it).
DAMAGED = "A data file of the lake is damaged"
#: DuckDB's words for a Parquet file it cannot decode (truncated, overwritten, not Parquet).
_PARQUET_DAMAGE = (
    "magic bytes",
    "footer",
    "parquet",
    "thrift",
    "corrupt",
    "too small",
    "no such file",
    "could not read",
    "cannot open file",
)
_PARQUET_PATH = re.compile(r"""['"]([^'"]+\.parquet)['"]""")


def _damaged(exc: duckdb.Error) -> DataDamaged | None:
    """A :class:`DataDamaged` for an error that names a lake data file it could not read."""
    text = str(exc)
    found = _PARQUET_PATH.search(text)
    if not found or not any(word in text.lower() for word in _PARQUET_DAMAGE):
        return None
    path = found.group(1)
    return DataDamaged(
        f"{DAMAGED}, so this page cannot show its data: {redact(path)}"
        f"{_table_of(path)} ({_first_line(exc).replace(repr(path), 'it').rstrip(': ')}). "
        "Ask the data platform team to restore the "
        "file from a backup or to run `ordertower materialize --rebuild-damaged`; "
        "`ordertower status` lists every damaged file."
    )


def _table_of(path: str) -> str:
    """`` of table schema.name`` for a data file of the lake (best effort, from the catalog)."""
    name = path.rsplit("/", 1)[-1]
    meta = f"__ducklake_metadata_{LAKE_ALIAS}"
    try:
        cur = lake_connection().cursor()
    except LakeError:
        return ""
    try:
        row = cur.execute(
            f"""
            select s.schema_name || '.' || t.table_name
            from (select table_id, path from {meta}.ducklake_data_file
                  union all select table_id, path from {meta}.ducklake_delete_file) f
            join {meta}.ducklake_table t using (table_id)
            join {meta}.ducklake_schema s using (schema_id)
            where f.path = $name or f.path like '%/' || $name
            order by t.end_snapshot nulls first
            limit 1
            """,
            {"name": name},
        ).fetchone()
    except duckdb.Error:
        return ""
    finally:
        cur.close()
    return f" of table {row[0]}" if row else ""


def _needs(permission: str | None) -> Callable[[F], F]:
    """Check the signed-in identity before the query runs *and* before a cached result is
    served (the check sits outside the cache). ``None``: any signed-in identity with a role.
    A denial raises :class:`NotAllowed`, which pages show like any other unavailable data."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                if permission is None:
                    who = auth.identity()
                    if who is None or not who.permissions:
                        raise AccessDenied("Sign in with a role to see the control tower's data.")
                else:
                    auth.check(permission)
            except AccessDenied as exc:
                raise NotAllowed(str(exc)) from exc
            return fn(*args, **kwargs)

        if hasattr(fn, "clear"):
            guarded.clear = fn.clear  # type: ignore[attr-defined]
        return guarded  # type: ignore[return-value]

    return wrap


@st.cache_resource(show_spinner=False)
def _open_lake(ducklake_uri: str, data_path: str) -> duckdb.DuckDBPyConnection:
    """Attach the lake read-only once per process and location.

    Keyed by the lake's location so that repointing ``ORDERTOWER_HOME`` opens the new lake
    instead of silently reusing a connection to the old one. A :class:`LakeError` is raised
    (and therefore not cached) while no lake exists, so the next rerun tries again.
    """
    del ducklake_uri, data_path  # only the cache key; connect() resolves the same settings
    return connect(read_only=True)


def lake_connection() -> duckdb.DuckDBPyConnection:
    """The shared read-only lake connection; use ``.cursor()`` per query, never directly."""
    settings = get_settings()
    return _open_lake(settings.ducklake_uri, settings.data_path)


def _query(sql: str, params: dict[str, Any] | None = None) -> pd.DataFrame:
    """Run one parameterised query on a fresh cursor and return its result as a DataFrame."""
    try:
        con = lake_connection()
    except LakeError as exc:
        raise DataUnavailable(f"The lake does not exist yet. {DEMO_HINT}") from exc
    cur = con.cursor()
    try:
        cur.execute(f"USE {LAKE_ALIAS}")
        return cur.execute(sql, params or {}).df()
    except duckdb.CatalogException as exc:
        raise DataUnavailable(
            f"The lake has no ingestion tables yet ({_first_line(exc)}). {DEMO_HINT}"
        ) from exc
    except (duckdb.IOException, duckdb.ConnectionException) as exc:
        # The catalog or its files may have been recreated under us (`make clean demo`): drop
        # the connection so the next rerun attaches afresh, and let the page show a hint.
        # Other errors (binder, type...) are bugs and must surface, not hide behind a hint.
        _open_lake.clear()
        damaged = _damaged(exc)  # a data file that is gone: name it and say what to do
        if damaged is not None:
            raise damaged from exc
        raise DataUnavailable(f"The lake could not be read ({_first_line(exc)}).") from exc
    except duckdb.InvalidInputException as exc:
        # a truncated or overwritten Parquet file: an error to report, not a bug in the query
        damaged = _damaged(exc)
        if damaged is None:
            raise
        raise damaged from exc
    finally:
        cur.close()


_UNSEEN = object()
_seen_snapshot: dict[str, Any] = {"id": _UNSEEN, "dropped_at": 0.0}
_seen_lock = threading.Lock()


def lake_snapshot() -> int | None:
    """The lake's latest DuckLake snapshot id (a cheap catalog read), or None without a lake."""
    try:
        cur = lake_connection().cursor()
    except LakeError:
        return None
    try:
        row = cur.execute(
            f"select max(snapshot_id) from __ducklake_metadata_{LAKE_ALIAS}.ducklake_snapshot"
        ).fetchone()
        return int(row[0]) if row and row[0] is not None else None
    except duckdb.Error:
        return None
    finally:
        cur.close()


def forget_snapshot() -> None:
    """Forget the snapshot the caches were read at (after the caches were emptied elsewhere)."""
    with _seen_lock:
        _seen_snapshot.update(id=_UNSEEN, dropped_at=0.0)


def drop_stale_results() -> bool:
    """Drop every cached query result when the lake has a snapshot newer than the one they
    were read at, at most once per :data:`REFRESH_SECONDS`; the app calls this on every run.
    Returns True when the caches were dropped."""
    snapshot = lake_snapshot()
    now = time.monotonic()
    with _seen_lock:
        if snapshot == _seen_snapshot["id"]:
            return False
        first = _seen_snapshot["id"] is _UNSEEN
        if not first and now - _seen_snapshot["dropped_at"] < REFRESH_SECONDS:
            return False
        _seen_snapshot.update(id=snapshot, dropped_at=now)
    if first:
        return False  # the caches of a fresh process hold nothing older than this snapshot
    st.cache_data.clear()
    return True


def _first_line(exc: BaseException) -> str:
    return redact(str(exc).strip().splitlines()[0]) if str(exc).strip() else type(exc).__name__


def _filters(
    datasets: tuple[str, ...], start: dt.date | None, end: dt.date | None
) -> dict[str, Any]:
    """Named parameters shared by the filtered queries (missing bounds mean unbounded)."""
    return {
        "datasets": list(datasets),
        "start": start or dt.date.min,
        "end": end or dt.date.max,
        "unpartitioned": UNPARTITIONED,
    }


#: The current state (latest run) of every selected dataset and partition inside the filters.
_CURRENT = """
    current_runs as (
        select *, try_cast(partition_key as date) as partition_date
        from ops.ingest_status
        where list_contains($datasets::varchar[], dataset)
          and (partition_key = $unpartitioned
               or try_cast(partition_key as date) between $start and $end)
    )"""

#: Last ingestion and SLA status per selected dataset, registered or merely ingested.
_FRESHNESS = """
    known as (
        select dataset from ops.datasets
        union
        select distinct dataset from ops.ingest_runs
    ),
    last_ingest as (
        select dataset, max(finished_at) as last_finished_at, max(max_event_ts) as last_event_ts
        from ops.ingest_runs
        group by dataset
    ),
    registry as (
        -- the registry is rewritten at every ingestion; keep one row per dataset regardless
        select dataset, any_value(owner) as owner,
               any_value(freshness_sla_hours) as freshness_sla_hours
        from ops.datasets
        group by dataset
    ),
    freshness as (
        select k.dataset, r.owner, r.freshness_sla_hours, l.last_finished_at, l.last_event_ts,
               (epoch(now()) - epoch(l.last_finished_at)) / 3600.0 as age_hours,
               case
                   when r.freshness_sla_hours is null then 'NO SLA'
                   when l.last_finished_at is null then 'LATE'
                   when (epoch(now()) - epoch(l.last_finished_at)) / 3600.0
                        > r.freshness_sla_hours then 'LATE'
                   else 'OK'
               end as status
        from known k
        left join registry r using (dataset)
        left join last_ingest l using (dataset)
        where list_contains($datasets::varchar[], k.dataset)
    )"""


@_needs("quality")
@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False)
def list_datasets() -> pd.DataFrame:
    """Every dataset the lake knows, for filters and captions.

    Columns: dataset, title, domain, owner, partitioned, freshness_sla_hours, rules,
    pii_columns (list), columns (the contract's column order: a CSV record's header), ingested
    (bool). Includes registered datasets never ingested and
    ingested datasets missing from the registry, so nothing silently disappears from the page.
    """
    return _query(
        """
        with registry as (
            select dataset, any_value(title) as title, any_value(domain) as domain,
                   any_value(owner) as owner, any_value(partitioned) as partitioned,
                   any_value(freshness_sla_hours) as freshness_sla_hours,
                   any_value(rules) as rules, any_value(pii_columns) as pii_columns,
                   any_value(columns) as columns
            from ops.datasets group by dataset
        ),
        ingested as (select distinct dataset from ops.ingest_runs)
        select coalesce(r.dataset, i.dataset) as dataset, r.title, r.domain, r.owner,
               r.partitioned, r.freshness_sla_hours, r.rules,
               coalesce(r.pii_columns, []::varchar[]) as pii_columns,
               r.columns, i.dataset is not null as ingested
        from registry r full outer join ingested i using (dataset)
        order by dataset
        """
    )


@_needs("quality")
@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False)
def partition_date_bounds() -> pd.DataFrame:
    """One row: first_date, last_date of the daily partitions ingested so far (null if none).

    Drives the date-range filter's limits and default window.
    """
    return _query(
        """
        select min(try_cast(partition_key as date)) as first_date,
               max(try_cast(partition_key as date)) as last_date
        from ops.ingest_status
        where partition_key <> $unpartitioned
        """,
        {"unpartitioned": UNPARTITIONED},
    )


@_needs("quality")
@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False)
def headline_metrics(
    datasets: tuple[str, ...], start: dt.date | None, end: dt.date | None
) -> pd.DataFrame:
    """One row of the page's headline numbers for the selection.

    Columns: datasets (selected datasets with partitions in range), partitions, received,
    landed, quarantined, quarantine_rate, conservation_breaks (partitions where
    received != landed + quarantined), failing_rules (failed rule evaluations on current runs),
    sla_breaches (selected datasets whose last ingestion is older than their SLA).
    """
    return _query(
        f"""
        with {_CURRENT}, {_FRESHNESS},
        rules as (
            select count(*) filter (where not c.success) as failing_rules
            from ops.contract_results c
            join current_runs r using (run_id, dataset, partition_key)
        )
        select count(distinct dataset) as datasets,
               count(*) as partitions,
               coalesce(sum(received), 0)::bigint as received,
               coalesce(sum(landed), 0)::bigint as landed,
               coalesce(sum(quarantined), 0)::bigint as quarantined,
               sum(quarantined) / nullif(sum(received), 0) as quarantine_rate,
               count(*) filter (where received <> landed + quarantined) as conservation_breaks,
               (select failing_rules from rules) as failing_rules,
               (select count(*) from freshness where status = 'LATE') as sla_breaches
        from current_runs
        """,
        _filters(datasets, start, end),
    )


@_needs("quality")
@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False)
def partition_quality(
    datasets: tuple[str, ...], start: dt.date | None, end: dt.date | None
) -> pd.DataFrame:
    """One row per selected dataset and partition: the latest run's volumes and health.

    Columns: dataset, partition_key, partition_date, files, received, landed, quarantined,
    quarantine_rate, conserved (received = landed + quarantined), unknown_codes,
    rules_evaluated, rules_failed, top_reasons ("reason (n); ..." of the three most frequent),
    run_id, finished_at. Conservation breaks first (they need action), then by dataset with
    the newest partitions first.
    """
    return _query(
        f"""
        with {_CURRENT},
        reason_rows as (
            select q.dataset, q.partition_key,
                   unnest(coalesce(q.rules, case when len(q.reasons) > 0 then q.reasons else [q.reason] end))
                       as reason
            from quarantine.rejected_records q
            join current_runs r using (run_id, dataset, partition_key)
        ),
        reason_counts as (
            select dataset, partition_key, reason, count(*) as n,
                   row_number() over (partition by dataset, partition_key
                                      order by count(*) desc, reason) as rank
            from reason_rows group by dataset, partition_key, reason
        ),
        top_reasons as (
            select dataset, partition_key,
                   string_agg(reason || ' (' || n || ')', '; ' order by rank) as top_reasons
            from reason_counts where rank <= 3 group by all
        ),
        rules as (
            select c.dataset, c.partition_key, count(*) as rules_evaluated,
                   count(*) filter (where not c.success) as rules_failed
            from ops.contract_results c
            join current_runs r using (run_id, dataset, partition_key)
            group by all
        )
        select r.dataset, r.partition_key, r.partition_date, r.files,
               r.received, r.landed, r.quarantined,
               r.quarantined / nullif(r.received, 0) as quarantine_rate,
               r.received = r.landed + r.quarantined as conserved,
               r.unknown_codes,
               coalesce(c.rules_evaluated, 0) as rules_evaluated,
               coalesce(c.rules_failed, 0) as rules_failed,
               t.top_reasons, r.run_id, r.finished_at
        from current_runs r
        left join top_reasons t using (dataset, partition_key)
        left join rules c using (dataset, partition_key)
        order by r.received = r.landed + r.quarantined, r.dataset, r.partition_key desc
        """,
        _filters(datasets, start, end),
    )


@_needs("quality")
@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False)
def daily_volumes(
    datasets: tuple[str, ...], start: dt.date | None, end: dt.date | None
) -> pd.DataFrame:
    """Per partition day, summed over the selected datasets: what arrived and what was kept.

    Columns: partition_date, received, landed, quarantined, quarantine_rate. Unpartitioned
    snapshots have no day and are left out.
    """
    return _query(
        f"""
        with {_CURRENT}
        select partition_date, sum(received)::bigint as received,
               sum(landed)::bigint as landed, sum(quarantined)::bigint as quarantined,
               sum(quarantined) / nullif(sum(received), 0) as quarantine_rate
        from current_runs
        where partition_date is not null
        group by partition_date
        order by partition_date
        """,
        _filters(datasets, start, end),
    )


@_needs("quality")
@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False)
def top_quarantine_reasons(
    datasets: tuple[str, ...], start: dt.date | None, end: dt.date | None, limit: int = 10
) -> pd.DataFrame:
    """The most frequent quarantine reasons in the selection, across partitions.

    Columns: dataset, reason, records, partitions (how many partitions it occurred in).
    A record rejected for two reasons counts once under each.
    """
    return _query(
        f"""
        with {_CURRENT},
        reason_rows as (
            select q.dataset, q.partition_key,
                   unnest(coalesce(q.rules, case when len(q.reasons) > 0 then q.reasons else [q.reason] end))
                       as reason
            from quarantine.rejected_records q
            join current_runs r using (run_id, dataset, partition_key)
        )
        select dataset, reason, count(*) as records,
               count(distinct partition_key) as partitions
        from reason_rows
        group by all
        order by records desc, dataset, reason
        limit $limit
        """,
        {**_filters(datasets, start, end), "limit": int(limit)},
    )


@_needs("quality")
@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False)
def dataset_freshness(datasets: tuple[str, ...]) -> pd.DataFrame:
    """Freshness per selected dataset: now minus its last finished ingestion vs its SLA.

    Columns: dataset, owner, freshness_sla_hours, last_finished_at, last_event_ts, age_hours,
    status ('LATE', 'OK' or 'NO SLA'; a registered dataset never ingested is 'LATE').
    Independent of the date filter: freshness is about now, not about the partitions viewed.
    """
    return _query(
        f"""
        with {_FRESHNESS}
        select * from freshness
        order by case status when 'LATE' then 0 when 'OK' then 1 else 2 end, dataset
        """,
        {"datasets": list(datasets)},
    )


@_needs("quality")
@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False)
def contract_rule_results(
    datasets: tuple[str, ...], start: dt.date | None, end: dt.date | None
) -> pd.DataFrame:
    """One row per dataset and contract rule over the current runs of the selection.

    Columns: dataset, rule, column_name, expectation, passed (all partitions succeeded),
    partitions_checked, partitions_failed, unexpected_count, evaluated_rows, unexpected_rate,
    failing_partitions (comma-separated, newest first), last_checked_at. Failing rules first,
    worst first, because that is what a steward acts on.
    """
    return _query(
        f"""
        with {_CURRENT}
        select c.dataset, c.rule, c.column_name, c.expectation,
               bool_and(c.success) as passed,
               count(*) as partitions_checked,
               count(*) filter (where not c.success) as partitions_failed,
               sum(c.unexpected_count)::bigint as unexpected_count,
               sum(c.evaluated_rows)::bigint as evaluated_rows,
               sum(c.unexpected_count) / nullif(sum(c.evaluated_rows), 0) as unexpected_rate,
               string_agg(c.partition_key, ', ' order by c.partition_key desc)
                   filter (where not c.success) as failing_partitions,
               max(c.checked_at) as last_checked_at
        from ops.contract_results c
        join current_runs r using (run_id, dataset, partition_key)
        group by c.dataset, c.rule, c.column_name, c.expectation
        order by passed, partitions_failed desc, unexpected_count desc, c.dataset, c.rule
        """,
        _filters(datasets, start, end),
    )


@_needs("quality")
def quarantined_records(
    dataset: str, partition_key: str, limit: int = 500, reveal: bool = False
) -> pd.DataFrame:
    """The quarantined records of one dataset partition's latest run.

    ``raw_record`` is masked (the dataset contract's PII fields, by JSON key or CSV header;
    text that cannot be parsed is withheld whole) unless ``reveal``, which needs
    ``quarantine.raw`` (stewards): the original text may hold personal data. Columns as
    :func:`_quarantined_records`.
    """
    records = _quarantined_records(dataset, partition_key, limit)
    if reveal:
        try:
            auth.check("quarantine.raw", "the original text of quarantined records")
        except AccessDenied as exc:
            raise NotAllowed(str(exc)) from exc
        return records
    from dashboards.components import mask_pii  # local: components imports this module

    registry = list_datasets()
    row = registry[registry["dataset"] == dataset]

    def listed(column: str) -> list[str] | None:
        value = row.iloc[0][column] if len(row) else None
        if not hasattr(value, "__len__") or isinstance(value, str) or not len(value):  # NA
            return None
        return [str(v) for v in value]

    pii, header = listed("pii_columns") or [], listed("columns")
    return records.assign(raw_record=records["raw_record"].map(lambda r: mask_pii(r, pii, header)))


@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False)
def _quarantined_records(dataset: str, partition_key: str, limit: int = 500) -> pd.DataFrame:
    """The quarantined records of one dataset partition's latest run, as delivered (callers:
    :func:`quarantined_records` only, which checks the reader).

    Columns: record_no, source_file, reasons (list), reason, raw_record, quarantined_at.
    Limited (default 500) because a broken feed can reject millions of records; the partition
    table carries the full count.
    """
    return _query(
        """
        select q.record_no, q.source_file, q.reasons, q.reason, q.raw_record, q.quarantined_at
        from quarantine.rejected_records q
        join ops.ingest_status s using (run_id, dataset, partition_key)
        where q.dataset = $dataset and q.partition_key = $partition_key
        order by q.source_file, q.record_no
        limit $limit
        """,
        {"dataset": dataset, "partition_key": partition_key, "limit": int(limit)},
    )


# --------------------------------------------------------------------------------------------
# The control tower's pages: governed marts only (schema ``marts``), parameterised, cached.
# --------------------------------------------------------------------------------------------

#: Hint when the marts a page reads have not been built yet.
MARTS_HINT = "Run `make demo` (or `ordertower materialize`) to build the marts."
#: Longest search input looked up; anything longer cannot be an id and is "not found".
MAX_SEARCH_LENGTH = 64
#: Rows a worklist returns at most (the headline counts carry the totals).
WORKLIST_LIMIT = 500


class Filters(tuple):
    """The sidebar filters, hashable so cached queries key on them.

    ``Filters.of(start, end, warehouses, carriers, channels)``; empty tuples mean "all".
    """

    __slots__ = ()

    @classmethod
    def of(
        cls,
        start: dt.date | None = None,
        end: dt.date | None = None,
        warehouses: tuple[str, ...] = (),
        carriers: tuple[str, ...] = (),
        channels: tuple[str, ...] = (),
    ) -> Filters:
        return cls((start, end, tuple(warehouses), tuple(carriers), tuple(channels)))

    @property
    def start(self) -> dt.date | None:
        return self[0]

    @property
    def end(self) -> dt.date | None:
        return self[1]

    def params(self) -> dict[str, Any]:
        start, end, warehouses, carriers, channels = self
        return {
            "start": start or dt.date.min,
            "end": end or dt.date.max,
            "warehouses": list(warehouses),
            "carriers": list(carriers),
            "channels": list(channels),
        }


ALL = Filters.of()


def _where(
    date_col: str,
    warehouse_col: str | None = None,
    carrier_col: str | None = None,
    channel_col: str | None = None,
) -> str:
    """The filter predicate over the given columns (code constants, never user input)."""
    parts = [f"{date_col} between $start and $end"]
    for col, param in (
        (warehouse_col, "warehouses"),
        (carrier_col, "carriers"),
        (channel_col, "channels"),
    ):
        if col:
            parts.append(f"(len(${param}) = 0 or list_contains(${param}::varchar[], {col}))")
    return " and ".join(parts)


def _mart_query(sql: str, params: dict[str, Any] | None = None) -> pd.DataFrame:
    """:func:`_query` for the marts: a missing mart is a hint to build the lake."""
    try:
        return _query(sql, params)
    except DataUnavailable as exc:
        if "ingestion tables" in str(exc):
            raise DataUnavailable(
                f"The marts this page reads are not built yet ({redact(exc.__cause__)}). {MARTS_HINT}"
            ) from exc.__cause__
        raise


@_needs(None)
@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False)
def empty_marts() -> frozenset[str]:
    """The marts that hold no rows, from the lake's catalog (DuckLake's per-table statistics:
    a table that never had a row has none). A lake without ETAs, alerts or risk scores yet has
    such marts, and DuckLake plans a lookup into an empty table far slower than into a full
    one (0.1 s on a small lake, 0.3-0.5 s on a 1M-order one)."""
    try:
        rows = _query(
            f"""
            select t.table_name
            from __ducklake_metadata_{LAKE_ALIAS}.ducklake_table t
            join __ducklake_metadata_{LAKE_ALIAS}.ducklake_schema s using (schema_id)
            left join __ducklake_metadata_{LAKE_ALIAS}.ducklake_table_stats ts using (table_id)
            where s.schema_name = 'marts' and t.end_snapshot is null
              and s.end_snapshot is null and coalesce(ts.record_count, 0) = 0
            """
        )
    except (DataUnavailable, duckdb.Error):
        return frozenset()  # unknown: every mart is read as it is
    return frozenset(rows["table_name"])


def _mart(name: str) -> str:
    """The FROM item of an optional mart (a code constant, never user input): the mart itself,
    or an empty row set of its columns when :func:`empty_marts` knows it has no rows."""
    if name in empty_marts():
        return f"(select * from marts.{name} where false)"
    return f"marts.{name}"


@_needs(None)
@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False)
def filter_options() -> dict[str, Any]:
    """What the sidebar filters offer: warehouses, carriers, channels and the order days.

    Returns a dict: warehouses (DataFrame warehouse_id, warehouse_name), carriers
    (carrier_id, carrier_name), channels (list), first_date, last_date.
    """
    warehouses = _mart_query(
        "select warehouse_id, warehouse_name from marts.dim_warehouse order by warehouse_id"
    )
    carriers = _mart_query(
        "select carrier_id, carrier_name from marts.dim_carrier order by carrier_id"
    )
    bounds = _mart_query(
        """
        select min(order_date) as first_date, max(order_date) as last_date,
               list(distinct channel order by channel) filter (where channel is not null)
                   as channels
        from marts.fct_orders
        """
    )
    row = bounds.iloc[0]
    return {
        "warehouses": warehouses,
        "carriers": carriers,
        "channels": list(row["channels"]) if row["channels"] is not None else [],
        "first_date": None
        if pd.isna(row["first_date"])
        else pd.Timestamp(row["first_date"]).date(),
        "last_date": None if pd.isna(row["last_date"]) else pd.Timestamp(row["last_date"]).date(),
    }


# -- order tracking ----------------------------------------------------------------------------


def clean_search(term: Any) -> str | None:
    """The search input as an id to look up exactly, or None when it cannot be one.

    Ids are short printable words (order numbers, tracking refs, customer ids); anything else
    (control characters, overlong input) is "not found" without touching the lake. Quotes and
    SQL fragments need no special case: the term only ever travels as a bound parameter.
    """
    if not isinstance(term, str):
        return None
    term = term.strip()
    if not term or len(term) > MAX_SEARCH_LENGTH or not term.isprintable():
        return None
    return term


@_needs("tracking")
@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False, max_entries=1000)
def find_orders(term: str, limit: int = 50) -> pd.DataFrame:
    """Orders matching a search term exactly: an order id, a carrier tracking ref or a customer id.

    Columns: order_id, customer_id, matched_on, order_date, order_status, order_total, currency,
    promise_type, channel, matches (how many orders match in all: a customer may have more
    than ``limit``, the most recent are returned). Exact matches only (case-insensitive for ids typed in lower case), so
    a partial or crafted input can never list another customer's orders.
    """
    cleaned = clean_search(term)
    if cleaned is None:
        return pd.DataFrame(
            columns=[
                "order_id",
                "customer_id",
                "matched_on",
                "order_date",
                "order_status",
                "order_total",
                "currency",
                "promise_type",
                "channel",
                "matches",
            ]
        )
    return _mart_query(
        """
        with hits as (
            -- the search mart is sorted by term: a lookup reads one row group
            select order_id, min(matched_on) as matched_on from marts.fct_order_search
            where search_term = $term or search_term = upper($term)
            group by order_id
        )
        select o.order_id, o.customer_id, h.matched_on, o.order_date, o.order_status,
               o.order_total, o.currency, o.promise_type, o.channel, count(*) over () as matches
        from hits h join marts.fct_orders o using (order_id)
        order by o.order_date desc, o.order_id
        limit $limit
        """,
        {"term": cleaned, "limit": int(limit)},
    )


def prefetch(*calls: tuple[Any, ...]) -> None:
    """Run several cached queries at once, each on its own cursor and thread, so a page that
    needs them all waits for the slowest, not the sum (DuckDB works outside the GIL). Each call
    is ``(function, *args)``; the page then calls the functions as usual and hits the cache.
    Errors are left for that second call to raise where the page handles them."""
    import threading

    from streamlit.runtime.scriptrunner import add_script_run_ctx, get_script_run_ctx

    ctx = get_script_run_ctx()

    def run(fn: Any, args: tuple[Any, ...]) -> None:
        # an error is raised again, where the page handles it, by the page's own call
        with contextlib.suppress(Exception):
            fn(*args)

    threads = [threading.Thread(target=run, args=(c[0], c[1:]), daemon=True) for c in calls]
    for thread in threads:
        if ctx is not None:
            add_script_run_ctx(thread, ctx)
        thread.start()
    for thread in threads:
        thread.join()


@_needs("tracking")
@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False, max_entries=1000)
def order_overview(order_id: str) -> pd.DataFrame:
    """One row: the order's status, promise, fulfilment and footprint (fct_orders), its
    warehouse's and last-mile carrier's names, and its latest ETA (fct_shipment_eta)."""
    return _mart_query(
        f"""
        select o.order_id, o.customer_id, o.source_system, o.channel, o.order_status,
               o.promise_type, o.currency, o.order_total, o.line_count, o.ordered_units,
               o.shipped_units, o.shipment_count, o.route_modes, o.warehouse_ids,
               o.primary_warehouse_id, w.warehouse_name, o.last_mile_carrier_id,
               c.carrier_name as last_mile_carrier_name, o.shipping_country_code,
               o.kg_co2e, o.green_option_kg_co2e, o.green_option_extra_days, o.is_green_option,
               o.transport_cost_eur, o.days_late, o.is_on_time, o.is_delivered, o.is_cancelled,
               o.cancellation_reason, o.is_lost, o.is_damaged, o.exception_event_count,
               o.order_date, o.promised_delivery_date, o.promised_by_at, o.ordered_at,
               o.shipped_at, o.delivered_at,
               e.predicted_delivery_at as eta_at, e.hours_vs_promise as eta_hours_vs_promise,
               e.is_predicted_late, e.eta_source, e.as_of as eta_as_of
        from marts.fct_orders o
        left join marts.dim_warehouse w on w.warehouse_id = o.primary_warehouse_id
        left join marts.dim_carrier c on c.carrier_id = o.last_mile_carrier_id
        left join (
            select * from {_mart("fct_shipment_eta")} where order_id = $order_id
            qualify row_number() over (order by predicted_delivery_at desc nulls last) = 1
        ) e on e.order_id = o.order_id
        where o.order_id = $order_id
        """,
        {"order_id": order_id},
    )


@_needs("tracking")
@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False, max_entries=1000)
def order_timeline(order_id: str) -> pd.DataFrame:
    """The order's milestones in order, planned vs actual, across shipments, carriers, modes.

    Columns: milestone, milestone_rank, shipment_id, leg_no, carrier_id, carrier_name, mode,
    location_name, milestone_status, planned_at, actual_at, delay_hours, is_late.
    """
    return _mart_query(
        """
        select t.milestone, t.milestone_rank, t.shipment_id, t.leg_no, t.carrier_id,
               c.carrier_name, t.mode, t.location_name, t.milestone_status, t.planned_at,
               t.actual_at, t.delay_hours, t.is_late
        from marts.fct_order_timeline t
        left join marts.dim_carrier c using (carrier_id)
        where t.order_id = $order_id
        order by coalesce(t.shipment_id, ''), t.milestone_rank, t.planned_at
        """,
        {"order_id": order_id},
    )


@_needs("tracking")
@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False, max_entries=1000)
def order_legs(order_id: str) -> pd.DataFrame:
    """The order's shipment legs with positions for the map, status, delays and emissions."""
    return _mart_query(
        """
        select l.shipment_id, l.leg_no, l.mode, l.carrier_id, c.carrier_name, l.tracking_ref,
               l.leg_status, l.last_event_code, l.origin_name, l.destination_hub_name,
               l.origin_lat, l.origin_lon, l.destination_lat_approx, l.destination_lon_approx,
               l.distance_km, l.kg_co2e, l.transport_cost_eur, l.green_mode, l.green_kg_co2e,
               l.green_extra_days, l.departure_delay_hours, l.arrival_delay_hours,
               l.planned_departure_at, l.actual_departure_at, l.planned_arrival_at,
               l.actual_arrival_at, l.hours_since_last_scan
        from marts.fct_shipment_legs l
        left join marts.dim_carrier c using (carrier_id)
        where l.order_id = $order_id
        order by l.shipment_id, l.leg_no
        """,
        {"order_id": order_id},
    )


@_needs("tracking")
@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False, max_entries=1000)
def order_events(order_id: str) -> pd.DataFrame:
    """Every carrier event of the order in the canonical vocabulary, with the carrier's own
    status code and text (the normalisation made visible)."""
    return _mart_query(
        """
        select event_at, tracking_ref, leg_no, carrier_id, feed_format, mode, event_code,
               exception_reason, carrier_status_code, carrier_status_text, location_name,
               location_country_code, is_late_arrival, is_out_of_order, ingested_at
        from marts.fct_tracking_events
        where order_id = $order_id
        order by event_at, event_seq
        """,
        {"order_id": order_id},
    )


@_needs("tracking")
@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False, max_entries=1000)
def order_alerts(order_id: str) -> pd.DataFrame:
    """The live alerts of the order (fct_exception_alerts) with their priced alternatives."""
    return _mart_query(
        f"""
        select alert_id, rule, reason, sub_reason, severity, mode, carrier_id, tracking_ref,
               recommended_option, recommended_action, alternatives_json, message_status,
               hours_late, promise_at_risk, is_resolved, detected_at, eta_at, act_by
        from {_mart("fct_exception_alerts")}
        where order_id = $order_id
        order by detected_at desc
        """,
        {"order_id": order_id},
    )


@_needs("tracking")
@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False, max_entries=1000)
def order_exceptions(order_id: str) -> pd.DataFrame:
    """The order's exception episodes as operations works them (fct_order_exceptions)."""
    return _mart_query(
        """
        select exception_type, exception_reason, severity, recommended_action, carrier_id,
               tracking_ref, is_open, is_sla_breached, sla_hours, age_hours, opened_at,
               resolved_at
        from marts.fct_order_exceptions
        where order_id = $order_id
        order by opened_at desc
        """,
        {"order_id": order_id},
    )


# -- exceptions --------------------------------------------------------------------------------

#: Exceptions are filtered by their order's day (the sidebar's "Order dates", as on every
#: page), not the day they opened: an exception opened after the last order day still shows.
_EXCEPTIONS_FROM = "marts.fct_order_exceptions x"
_EXCEPTIONS_WHERE = _where("x.order_date", "x.warehouse_id", "x.carrier_id", "x.channel")
#: What each worklist status means (fct_order_exceptions.worklist_status), in the page's order.
WORKLIST_STATUSES = {
    "overdue": "past its SLA although the carrier's feed reported beyond the SLA's end: the data "
    "could have closed it and did not",
    "awaiting_data": "past its SLA by the lake's clock, but the feed that would close it has not "
    "reported that far yet: its closing event may simply not be here",
    "within_sla": "open, still within its SLA",
}


@_needs("exceptions")
@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False)
def exception_summary(filters: Filters) -> pd.DataFrame:
    """Open exceptions per severity and type: how many, how many past their SLA, value at risk.

    Columns: severity, exception_type, open, sla_breached, overdue, awaiting_data, within_sla,
    order_value, oldest_age_hours. ``sla_breached`` = ``overdue`` + ``awaiting_data``: past the
    SLA by the lake's clock; only ``overdue`` ones could have been closed by the data.
    """
    return _mart_query(
        f"""
        select x.severity, x.exception_type, count(*) as open,
               count(*) filter (where x.is_sla_breached) as sla_breached,
               count(*) filter (where x.worklist_status = 'overdue') as overdue,
               count(*) filter (where x.worklist_status = 'awaiting_data') as awaiting_data,
               count(*) filter (where x.worklist_status = 'within_sla') as within_sla,
               sum(x.order_value) as order_value, max(x.age_hours) as oldest_age_hours
        from {_EXCEPTIONS_FROM}
        where x.is_open and {_EXCEPTIONS_WHERE}
        group by x.severity, x.exception_type
        order by case severity when 'critical' then 0 when 'high' then 1 when 'medium' then 2
                 else 3 end, open desc
        """,
        filters.params(),
    )


@_needs("exceptions")
@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False)
def exception_age_profile(filters: Filters) -> pd.DataFrame:
    """Open exceptions by severity and age as a share of their SLA (the ageing chart).

    Columns: severity, age_band ('< 50 % of SLA', '50-100 %', '1-2x SLA', '> 2x SLA'), open.
    """
    return _mart_query(
        f"""
        select x.severity,
               case when x.age_hours < 0.5 * x.sla_hours then '< 50 % of SLA'
                    when x.age_hours <= x.sla_hours then '50-100 % of SLA'
                    when x.age_hours <= 2 * x.sla_hours then '1-2x SLA'
                    else '> 2x SLA' end as age_band,
               count(*) as open
        from {_EXCEPTIONS_FROM}
        where x.is_open and {_EXCEPTIONS_WHERE}
        group by all
        """,
        filters.params(),
    )


@_needs("exceptions")
@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False)
def open_exceptions(
    filters: Filters,
    severities: tuple[str, ...] = (),
    types: tuple[str, ...] = (),
    breached_only: bool = False,
    limit: int = WORKLIST_LIMIT,
    statuses: tuple[str, ...] = (),
) -> pd.DataFrame:
    """The worklist: open exceptions, truly overdue first, then awaiting data, then within
    their SLA; within each, most severe and most overdue first. ``statuses`` keeps only those
    worklist statuses (:data:`WORKLIST_STATUSES`; empty: all).

    Columns: exception_id, order_id, customer_id, language, tier, shipment_id, tracking_ref,
    carrier_id, warehouse_id, exception_type, exception_reason, severity, mode,
    recommended_action, order_value, sla_hours, age_hours, sla_used (age / SLA),
    is_sla_breached, worklist_status, sla_due_at, data_through_at, opened_at,
    promised_delivery_date.
    """
    return _mart_query(
        f"""
        with worklist as (
            select x.* from {_EXCEPTIONS_FROM}
            where x.is_open and {_EXCEPTIONS_WHERE}
              and (len($severities) = 0 or list_contains($severities::varchar[], x.severity))
              and (len($types) = 0 or list_contains($types::varchar[], x.exception_type))
              and (not $breached_only or x.is_sla_breached)
              and (len($statuses) = 0 or list_contains($statuses::varchar[], x.worklist_status))
            order by case x.worklist_status when 'overdue' then 0 when 'awaiting_data' then 1
                     else 2 end,
                     case x.severity when 'critical' then 0 when 'high' then 1
                     when 'medium' then 2 else 3 end,
                     x.age_hours / nullif(x.sla_hours, 0) desc nulls last, x.exception_id
            limit $limit
        )
        -- the customer's language and tier (for the message) only for the rows shown
        select x.exception_id, x.order_id, o.customer_id, cu.language, cu.tier, x.shipment_id,
               x.tracking_ref, x.carrier_id, x.warehouse_id, x.exception_type,
               x.exception_reason, x.severity, x.mode, x.recommended_action, x.order_value,
               x.sla_hours, x.age_hours, x.age_hours / nullif(x.sla_hours, 0) as sla_used,
               x.is_sla_breached, x.worklist_status, x.sla_due_at, x.data_through_at,
               x.opened_at, o.promised_delivery_date
        from worklist x
        left join marts.fct_orders o
          on o.order_id = x.order_id and o.order_id in (select order_id from worklist)
        left join marts.dim_customer cu on cu.customer_id = o.customer_id
        order by case x.worklist_status when 'overdue' then 0 when 'awaiting_data' then 1
                 else 2 end,
                 case x.severity when 'critical' then 0 when 'high' then 1
                 when 'medium' then 2 else 3 end,
                 x.age_hours / nullif(x.sla_hours, 0) desc nulls last, x.exception_id
        """,
        {
            **filters.params(),
            "severities": list(severities),
            "types": list(types),
            "breached_only": bool(breached_only),
            "limit": int(limit),
            "statuses": list(statuses),
        },
    )


@_needs("exceptions")
@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False)
def live_alerts(filters: Filters, limit: int = WORKLIST_LIMIT) -> pd.DataFrame:
    """Unresolved alerts of the live stream (fct_exception_alerts), newest first, with what a
    customer message needs (language and tier, never a name) and the priced alternatives, and
    its worklist status (overdue, awaiting_data, within_sla: :data:`WORKLIST_STATUSES`)."""
    return _mart_query(
        f"""
        select a.alert_id, a.order_id, a.customer_id, cu.language, cu.tier, a.shipment_id,
               a.tracking_ref, a.carrier_id, a.rule, a.reason, a.sub_reason, a.severity, a.mode,
               a.recommended_option, a.recommended_action, a.alternatives_json,
               a.message_status, a.sla_minutes, a.hours_late, a.order_value_eur,
               a.promise_at_risk, a.promised_delivery_date, a.eta_at, a.detected_at, a.act_by,
               a.worklist_status
        from {_mart("fct_exception_alerts")} a
        join (
            -- only the alerted orders (a semi-join: the alerts are few, the orders many)
            select order_id, order_date, primary_warehouse_id, channel from marts.fct_orders
            where order_id in (select order_id from {_mart("fct_exception_alerts")})
        ) o on o.order_id = a.order_id
        left join marts.dim_customer cu on cu.customer_id = a.customer_id
        where not a.is_resolved
          and {_where("o.order_date", "o.primary_warehouse_id", "a.carrier_id", "o.channel")}
        order by a.detected_at desc
        limit $limit
        """,
        {**filters.params(), "limit": int(limit)},
    )


# -- carbon ------------------------------------------------------------------------------------

_KPI_WHERE = _where("kpi_date", "warehouse_id", "carrier_id", "channel")
_LEG_WHERE = _where("o.order_date", "o.primary_warehouse_id", "l.carrier_id", "o.channel")


@_needs("carbon")
@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False)
def carbon_trend(filters: Filters, grain: str = "week") -> pd.DataFrame:
    """CO2e over time from the KPI facts: total, per order, per item, green-option uptake.

    Columns: period, orders, shipped_orders, kg_co2e, kg_co2e_per_order, kg_co2e_per_item,
    green_orders, green_option_uptake. ``grain``: day or week.
    """
    period = "kpi_date" if grain == "day" else "date_trunc('week', kpi_date)::date"
    return _mart_query(
        f"""
        select {period} as period, sum(orders)::bigint as orders,
               sum(shipped_orders)::bigint as shipped_orders, sum(kg_co2e) as kg_co2e,
               sum(kg_co2e) / nullif(sum(shipped_orders), 0) as kg_co2e_per_order,
               sum(kg_co2e) / nullif(sum(units_shipped), 0) as kg_co2e_per_item,
               sum(green_orders)::bigint as green_orders,
               sum(green_orders) / nullif(sum(orders), 0) as green_option_uptake
        from marts.kpi_daily
        where {_KPI_WHERE}
        group by all order by period
        """,
        filters.params(),
    )


@_needs("carbon")
@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False)
def carbon_legs(filters: Filters) -> pd.DataFrame:
    """Leg emissions per mode, carrier and lane (origin -> destination country), in one scan of
    the legs; :func:`carbon_breakdown` and :func:`carbon_lanes` aggregate it further.

    Columns: mode, carrier_id, carrier_name, origin_name, destination_country_code, legs,
    tonne_km, kg_co2e, green_kg_co2e, origin_lat, origin_lon, destination_lat, destination_lon.
    """
    return _mart_query(
        f"""
        with legs as (
            select l.* from marts.fct_shipment_legs l
            join marts.fct_orders o using (order_id)
            where {_LEG_WHERE}
        )
        select l.mode, l.carrier_id, c.carrier_name, l.origin_name, l.destination_country_code,
               count(*) as legs, sum(l.tonne_km) as tonne_km, sum(l.kg_co2e) as kg_co2e,
               sum(coalesce(l.green_kg_co2e, l.kg_co2e)) as green_kg_co2e,
               avg(l.origin_lat) as origin_lat, avg(l.origin_lon) as origin_lon,
               avg(l.destination_lat_approx) as destination_lat,
               avg(l.destination_lon_approx) as destination_lon
        from legs l
        left join marts.dim_carrier c on c.carrier_id = l.carrier_id
        group by all
        """,
        filters.params(),
    )


@_needs("carbon")
def carbon_breakdown(filters: Filters) -> pd.DataFrame:
    """Leg emissions per mode and carrier (GLEC well-to-wheel), with the tonne-km moved.

    Columns: mode, carrier_id, carrier_name, legs, tonne_km, kg_co2e, g_co2e_per_tkm,
    green_kg_co2e (the same legs on their green mode).
    """
    legs = carbon_legs(filters)
    out = (
        legs.groupby(["mode", "carrier_id", "carrier_name"], dropna=False, as_index=False)[
            ["legs", "tonne_km", "kg_co2e", "green_kg_co2e"]
        ]
        .sum()
        .sort_values("kg_co2e", ascending=False)
    )
    out["g_co2e_per_tkm"] = 1000 * out["kg_co2e"] / out["tonne_km"].where(out["tonne_km"] > 0)
    return out.reset_index(drop=True)


@_needs("carbon")
def carbon_lanes(filters: Filters, limit: int = 15) -> pd.DataFrame:
    """The lanes (origin -> destination country, mode) that emit most, with positions.

    Columns: origin_name, destination_country_code, mode, legs, kg_co2e, kg_co2e_per_leg,
    origin_lat, origin_lon, destination_lat, destination_lon (mean approximate destination).
    """
    legs = carbon_legs(filters)
    keys = ["origin_name", "destination_country_code", "mode"]
    weighted = legs.assign(
        **{
            c: legs[c] * legs["legs"]
            for c in ("origin_lat", "origin_lon", "destination_lat", "destination_lon")
        }
    )
    out = weighted.groupby(keys, dropna=False, as_index=False)[
        ["legs", "kg_co2e", "origin_lat", "origin_lon", "destination_lat", "destination_lon"]
    ].sum()
    for c in ("origin_lat", "origin_lon", "destination_lat", "destination_lon"):
        out[c] = out[c] / out["legs"]
    out["kg_co2e_per_leg"] = out["kg_co2e"] / out["legs"]
    out = out.sort_values("kg_co2e", ascending=False).head(limit).reset_index(drop=True)
    return out[
        [
            *keys,
            "legs",
            "kg_co2e",
            "kg_co2e_per_leg",
            "origin_lat",
            "origin_lon",
            "destination_lat",
            "destination_lon",
        ]
    ]


@_needs("carbon")
@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False)
def green_option_potential(filters: Filters) -> pd.DataFrame:
    """What the green delivery option could still save: one row over the shipped orders.

    Columns: orders, green_orders, candidates (not green, a green option exists),
    candidate_kg_co2e, candidate_green_kg_co2e, candidate_extra_days (mean), current_kg_co2e.
    The what-if of moving a share s of the candidates saves
    s * (candidate_kg_co2e - candidate_green_kg_co2e).
    """
    return _mart_query(
        f"""
        select count(*) as orders,
               count(*) filter (where is_green_option) as green_orders,
               count(*) filter (where not is_green_option
                                and green_option_kg_co2e < kg_co2e) as candidates,
               coalesce(sum(kg_co2e) filter (where not is_green_option
                                and green_option_kg_co2e < kg_co2e), 0) as candidate_kg_co2e,
               coalesce(sum(green_option_kg_co2e) filter (where not is_green_option
                                and green_option_kg_co2e < kg_co2e), 0)
                   as candidate_green_kg_co2e,
               avg(green_option_extra_days) filter (where not is_green_option
                                and green_option_kg_co2e < kg_co2e) as candidate_extra_days,
               coalesce(sum(kg_co2e), 0) as current_kg_co2e
        from marts.fct_orders
        where shipped_at is not null
          and {_where("order_date", "primary_warehouse_id", "last_mile_carrier_id", "channel")}
        """,
        filters.params(),
    )


# -- KPIs --------------------------------------------------------------------------------------

#: The KPI maturity horizon (dbt var ``kpi_maturity_hours``, its default in
#: dbt/models/intermediate/int_kpi_facts.sql): an order's outcome is known once it is cancelled,
#: delivered or lost, or once its promise ended this long before the lake's data clock. The
#: outcome rates (on time, next-day hit, fill, cancellation) count matured orders only.
KPI_MATURITY_HOURS = 72
#: A period is provisional while more than this share of its orders is open (dbt var
#: ``kpi_provisional_open_share``, its default in dbt/macros/kpi.sql).
KPI_PROVISIONAL_OPEN_SHARE = 0.01

#: The KPI facts summed before rates are recomputed (never an average of daily rates).
_KPI_SUMS = f"""
    sum(orders)::bigint as orders, sum(order_value) as order_value,
    sum(cancelled_orders)::bigint as cancelled_orders,
    sum(delivered_orders)::bigint as delivered_orders,
    sum(on_time_orders) / nullif(sum(due_orders), 0) as on_time_delivery_rate,
    sum(perfect_orders) / nullif(sum(closed_orders), 0) as perfect_order_rate,
    sum(error_orders) / nullif(sum(closed_orders), 0) as error_rate,
    sum(units_filled) / nullif(sum(units_to_fill), 0) as fill_rate,
    sum(next_day_on_time_orders) / nullif(sum(next_day_due_orders), 0)
        as next_day_promise_hit_rate,
    sum(cancelled_orders) / nullif(sum(matured_orders), 0) as cancellation_rate,
    sum(transport_cost_eur) / nullif(sum(shipped_orders), 0) as cost_per_order_eur,
    sum(kg_co2e) / nullif(sum(shipped_orders), 0) as kg_co2e_per_order,
    sum(green_orders) / nullif(sum(orders), 0) as green_option_uptake,
    sum(recovered_orders)::bigint as recovered_orders,
    sum(recovered_order_value) as recovered_order_value,
    sum(exceptions_opened)::bigint as exceptions_opened,
    sum(rating_sum) / nullif(sum(reviews), 0) as avg_rating,
    (sum(promoter_reviews) - sum(detractor_reviews)) / nullif(sum(reviews), 0)
        as sentiment_index,
    sum(matured_orders)::bigint as matured_orders, sum(open_orders)::bigint as open_orders,
    sum(due_orders)::bigint as due_orders,
    coalesce(sum(open_orders) > {KPI_PROVISIONAL_OPEN_SHARE} * sum(orders), false)
        as is_provisional"""

#: Drill-down dimensions of the KPI page -> (kpi_daily column, its label in the mart).
KPI_DIMENSIONS = {
    "warehouse": "warehouse_id",
    "carrier": "carrier_id",
    "channel": "channel",
    "source system": "source_system",
}


@_needs("kpis")
@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False)
def kpi_totals(filters: Filters) -> pd.DataFrame:
    """One row of every KPI over the filters, rates recomputed from the summed facts."""
    return _mart_query(
        f"select {_KPI_SUMS} from marts.kpi_daily where {_KPI_WHERE}", filters.params()
    )


@_needs("kpis")
@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False)
def kpi_trend(filters: Filters, grain: str = "week") -> pd.DataFrame:
    """Every KPI per day or ISO week (Monday) over the filters. Column period first."""
    period = "kpi_date" if grain == "day" else "date_trunc('week', kpi_date)::date"
    return _mart_query(
        f"""
        select {period} as period, {_KPI_SUMS}
        from marts.kpi_daily where {_KPI_WHERE}
        group by all order by period
        """,
        filters.params(),
    )


@_needs("kpis")
@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False)
def kpi_by(filters: Filters, dimension: str) -> pd.DataFrame:
    """Every KPI per value of a drill-down dimension (see :data:`KPI_DIMENSIONS`), biggest
    first. Column ``member`` holds the dimension's value (warehouse id, carrier id...)."""
    column = KPI_DIMENSIONS[dimension]  # KeyError for anything else: never user SQL
    return _mart_query(
        f"""
        select coalesce({column}, '(none)') as member, {_KPI_SUMS}
        from marts.kpi_daily where {_KPI_WHERE}
        group by all order by orders desc
        """,
        filters.params(),
    )


# -- risk review -------------------------------------------------------------------------------


@_needs("risk.read")
@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False)
def risk_overview(filters: Filters) -> pd.DataFrame:
    """Scored orders per day and final decision (after review): the volume the model triages.

    Columns: order_date, final_decision, orders, order_total, mean_score.
    """
    return _mart_query(
        f"""
        select cast(r.ordered_at as date) as order_date, r.final_decision,
               count(*) as orders, sum(r.order_total) as order_total,
               avg(r.risk_score) as mean_score
        from marts.fct_order_risk r
        join marts.fct_orders o using (order_id)
        where {_where("o.order_date", "o.primary_warehouse_id", "o.last_mile_carrier_id", "o.channel")}
        group by all order by order_date
        """,
        filters.params(),
    )


_RISK_WHERE = _where(
    "o.order_date", "o.primary_warehouse_id", "o.last_mile_carrier_id", "o.channel"
)


@_needs("risk.read")
@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False)
def risk_counts(filters: Filters) -> pd.DataFrame:
    """One row: orders scored in the selection, held for review by the model, rejected by the
    model, held and decided (in the mart or in the live decision log), and held and still
    waiting. ``waiting`` counts exactly the orders :func:`review_queue` lists for the same
    filters, so the page's counters and its queue agree."""
    decided = _decided_orders_sql()
    return _mart_query(
        f"""
        select count(*) as scored,
               count(*) filter (where r.model_decision = 'review') as held,
               count(*) filter (where r.model_decision = 'reject') as rejected,
               count(*) filter (where r.model_decision = 'review' and (
                   r.review_status <> 'pending' or r.order_id in ({decided}))) as decided,
               count(*) filter (where r.review_status = 'pending'
                   and r.order_id not in ({decided})) as waiting
        from marts.fct_order_risk r
        join marts.fct_orders o using (order_id)
        where {_RISK_WHERE}
        """,
        filters.params(),
    )


@_needs("risk.read")
@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False)
def review_queue(filters: Filters, limit: int = WORKLIST_LIMIT) -> pd.DataFrame:
    """Orders of the selection waiting for an analyst, by expected loss, minus those decided
    since the queue was built (the decision log is read live, so a decision leaves the queue at
    once). At most ``limit`` rows; :func:`risk_counts` says how many wait in all."""
    decided = _decided_orders_sql()
    return _mart_query(
        f"""
        select q.queue_position, q.order_id, q.customer_id, q.ordered_at, q.order_total,
               q.risk_score, q.expected_loss, q.reason_1, q.reason_2, q.reason_3, q.channel,
               q.payment_method, q.shipping_country_code, q.model_version
        from marts.fct_risk_review_queue q
        join marts.fct_orders o using (order_id)
        where q.order_id not in ({decided}) and {_RISK_WHERE}
        order by q.queue_position
        limit $limit
        """,
        {**filters.params(), "limit": int(limit)},
    )


def _decided_orders_sql() -> str:
    """The orders with a decision in the audited log (empty before the first decision)."""
    if _decisions_table_exists():
        return "select order_id from ops.risk_review_decisions"
    return "select null::varchar where false"


def _decisions_table_exists() -> bool:
    return lake_has_table("ops", "risk_review_decisions")


@_needs("risk.read")
@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False, max_entries=100)
def review_decisions(order_id: str | None = None, limit: int = 200) -> pd.DataFrame:
    """The review decisions, newest first (all, or one order's), from the audited log itself:
    who decided what, when, on which model version. Empty before the first decision."""
    columns = [
        "decision_id",
        "order_id",
        "decision",
        "reviewer",
        "note",
        "decided_at",
        "model_version",
    ]
    if not _decisions_table_exists():
        return pd.DataFrame(columns=columns)
    return _query(
        f"""
        select {", ".join(columns)} from ops.risk_review_decisions
        where $order_id is null or order_id = $order_id
        order by decided_at desc
        limit $limit
        """,
        {"order_id": order_id, "limit": int(limit)},
    )


@_needs("risk.read")
@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False, max_entries=1000)
def order_risk(order_id: str) -> pd.DataFrame:
    """The order's risk score, decision and reasons (fct_order_risk); empty if not scored."""
    return _mart_query(
        f"""
        select order_id, risk_score, model_decision, final_decision, review_status,
               reason_1, reason_2, reason_3, model_version, scored_at
        from {_mart("fct_order_risk")} where order_id = $order_id
        """,
        {"order_id": order_id},
    )


# -- dispatch ----------------------------------------------------------------------------------


@_needs("dispatch")
@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False)
def dispatch_waves(start: dt.date | None, end: dt.date | None) -> pd.DataFrame:
    """Per wave: the optimised plan beside the baseline rule (fct_dispatch_plan_vs_baseline)."""
    return _mart_query(
        """
        select * from marts.fct_dispatch_plan_vs_baseline
        where wave_date between $start and $end
        order by wave_date
        """,
        {"start": start or dt.date.min, "end": end or dt.date.max},
    )


@_needs("dispatch")
@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False)
def dispatch_flows(wave_date: dt.date, plan: str) -> pd.DataFrame:
    """A wave's allocation as flows: per warehouse, lane variant and destination cell (half a
    degree, ~50 km: a thousand lines for a 1M-order lake's wave, which a browser draws at
    once; ten times that at 0.1 degree took seconds), the shipments, units, cost and CO2e,
    with positions for the map."""
    return _mart_query(
        """
        select s.warehouse_id, w.warehouse_name, s.warehouse_type, s.lane_variant, s.modes,
               any_value(s.warehouse_lat) as warehouse_lat,
               any_value(s.warehouse_lon) as warehouse_lon,
               round(s.destination_lat_approx * 2) / 2 as destination_lat,
               round(s.destination_lon_approx * 2) / 2 as destination_lon,
               count(*) as shipments, sum(s.units) as units,
               sum(s.transport_cost_eur) as transport_cost_eur, sum(s.kg_co2e) as kg_co2e,
               count(*) filter (where s.is_on_time) as on_time,
               count(*) filter (where s.is_deferred) as deferred
        from marts.fct_dispatch_shipments s
        left join marts.dim_warehouse w using (warehouse_id)
        where s.wave_date = $wave_date and s.plan = $plan
        group by all
        """,
        {"wave_date": wave_date, "plan": plan},
    )


@_needs("dispatch")
@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False)
def dispatch_by_warehouse(wave_date: dt.date) -> pd.DataFrame:
    """Both plans of a wave per warehouse: shipments, units, cost, CO2e, on-time share."""
    return _mart_query(
        """
        select s.plan, s.warehouse_id, w.warehouse_name, s.warehouse_type,
               count(*) as shipments, sum(s.units) as units,
               sum(s.transport_cost_eur) as transport_cost_eur, sum(s.kg_co2e) as kg_co2e,
               avg(s.is_on_time::int) as on_time_share
        from marts.fct_dispatch_shipments s
        left join marts.dim_warehouse w using (warehouse_id)
        where s.wave_date = $wave_date
        group by all order by s.plan desc, shipments desc
        """,
        {"wave_date": wave_date},
    )


@_needs("dispatch")
@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False)
def van_routes(wave_date: dt.date) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A wave's van rounds: the routes (fct_route_plans) and their stops in visiting order."""
    params = {"wave_date": wave_date}
    routes = _mart_query(
        """
        select route_id, warehouse_id, engine, vehicle_no, stops, load_kg, distance_km,
               duration_min, kg_co2e, is_feasible, depot_lat, depot_lon
        from marts.fct_route_plans where wave_date = $wave_date
        order by warehouse_id, vehicle_no
        """,
        params,
    )
    stops = _mart_query(
        """
        select route_id, stop_no, destination_lat_approx as lat, destination_lon_approx as lon,
               window_start_min, window_end_min, arrival_min, is_within_window
        from marts.fct_route_stops where wave_date = $wave_date
        order by route_id, stop_no
        """,
        params,
    )
    return routes, stops


# -- data quality of the marts -----------------------------------------------------------------


@_needs("quality")
@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False)
def mart_tables() -> pd.DataFrame:
    """Every table of the marts schema with its row count and its last change (the DuckLake
    snapshot that last wrote it). Columns: mart, rows, last_built_at."""
    tables = _query(
        """
        select table_name as mart from information_schema.tables
        where table_catalog = $catalog and table_schema = 'marts'
        order by table_name
        """,
        {"catalog": LAKE_ALIAS},
    )
    if tables.empty:
        return pd.DataFrame(columns=["mart", "rows", "last_built_at"])
    counts = " union all ".join(
        f"select '{name}' as mart, count(*) as rows from marts.\"{name}\""
        for name in tables["mart"]
        if name.replace("_", "").isalnum()  # identifiers from the catalog, checked anyway
    )
    rows = _query(counts)
    meta = f"__ducklake_metadata_{LAKE_ALIAS}"
    built = _query(
        f"""
        with marts as (
            select t.table_id, t.table_name, t.begin_snapshot
            from {meta}.ducklake_table t
            join {meta}.ducklake_schema sc using (schema_id)
            where sc.schema_name = 'marts' and t.end_snapshot is null
              and sc.end_snapshot is null
        ),
        changed as (
            -- created (a full rebuild) or appended to (an incremental model) since
            select table_name, begin_snapshot as snapshot_id from marts
            union all
            select m.table_name, max(f.begin_snapshot)
            from {meta}.ducklake_data_file f join marts m using (table_id)
            group by m.table_name
        )
        select c.table_name as mart, max(s.snapshot_time) as last_built_at
        from changed c join {meta}.ducklake_snapshot s using (snapshot_id)
        group by c.table_name
        """
    )
    return rows.merge(built, on="mart", how="left")


@_needs("quality")
@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False)
def mart_health() -> pd.DataFrame:
    """Every mart's contract (data_contracts/marts/, the stewards' ODCS files) beside what the
    lake holds: owner, domain, freshness SLA, rules, rows, last build and its age.

    Columns: mart, domain, owner, sla_hours (freshness), columns, rules (column-level quality rules
    and required/unique/enum constraints), rows, last_built_at, age_hours, status ('MISSING'
    when the contract's table is not in the lake, 'EMPTY', 'LATE' past the SLA, else 'OK').
    """
    from pipelines.contracts.marts import mart_contracts

    lake = mart_tables()
    rows = []
    for name, contract in sorted(mart_contracts().items()):
        rules = sum(
            len(c.quality) + int(c.required) + int(c.unique) + int(c.enum is not None)
            for c in contract.columns
        ) + len(contract.quality)
        rows.append(
            {
                "mart": name,
                "domain": contract.domain,
                "owner": contract.owner,
                "sla_hours": contract.freshness_hours,
                "columns": len(contract.columns),
                "rules": rules,
            }
        )
    frame = pd.DataFrame(rows).merge(lake, on="mart", how="left")
    now = pd.Timestamp.now(tz="UTC")
    built = pd.to_datetime(frame["last_built_at"], utc=True)
    frame["age_hours"] = (now - built).dt.total_seconds() / 3600.0
    frame["status"] = "OK"
    rows_built = pd.to_numeric(frame["rows"], errors="coerce")
    frame.loc[rows_built.fillna(0) == 0, "status"] = "EMPTY"
    late = frame["sla_hours"].notna() & (frame["age_hours"] > frame["sla_hours"])
    frame.loc[late & (frame["status"] == "OK"), "status"] = "LATE"
    frame.loc[frame["rows"].isna(), "status"] = "MISSING"
    order = {"MISSING": 0, "LATE": 1, "EMPTY": 2, "OK": 3}
    return frame.sort_values(
        ["status", "mart"], key=lambda s: s.map(order) if s.name == "status" else s
    )


# -- audit log ---------------------------------------------------------------------------------

AUDIT_COLUMNS = [
    "occurred_at",
    "actor",
    "roles",
    "channel",
    "action",
    "target",
    "outcome",
    "before_state",
    "after_state",
    "detail",
]


@_needs("audit.read")
@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False)
def audit_events(
    start: dt.date,
    end: dt.date,
    actions: tuple[str, ...] = (),
    outcomes: tuple[str, ...] = (),
    actor: str = "",
    limit: int = 1000,
) -> pd.DataFrame:
    """Audit rows of ``[start, end]`` (UTC days), newest first, optionally of some actions,
    outcomes or one actor (a substring, case-insensitive). Empty before the first event."""
    if not lake_has_table("ops", "audit_log"):
        return pd.DataFrame(columns=AUDIT_COLUMNS)
    return _query(
        f"""
        select {", ".join(AUDIT_COLUMNS)} from ops.audit_log
        where cast(occurred_at at time zone 'UTC' as date) between $start and $end
          and (len($actions) = 0 or list_contains($actions::varchar[], action))
          and (len($outcomes) = 0 or list_contains($outcomes::varchar[], outcome))
          and ($actor = '' or contains(lower(actor), lower($actor)))
        order by occurred_at desc
        limit $limit
        """,
        {
            "start": start,
            "end": end,
            "actions": list(actions),
            "outcomes": list(outcomes),
            "actor": actor.strip(),
            "limit": int(limit),
        },
    )


def lake_has_table(schema: str, table: str) -> bool:
    found = _query(
        """
        select count(*) as n from information_schema.tables
        where table_catalog = $catalog and table_schema = $schema and table_name = $table
        """,
        {"catalog": LAKE_ALIAS, "schema": schema, "table": table},
    )
    return bool(found.iloc[0, 0])
