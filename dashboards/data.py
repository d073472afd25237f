"""The one data-access module of the dashboards.

Every page reads the lake through the functions here and nowhere else, so that:

* there is exactly one read-only connection per lake and process (``st.cache_resource``),
  shared by all sessions; each query runs on its own cursor because a DuckDB connection must
  not be used by two threads (Streamlit sessions) at once;
* every aggregation is SQL in this module, parameterised (never string-formatted with user
  input), and its result is cached for a minute (``st.cache_data(ttl=60)``) so reruns caused by
  widget clicks do not hit the lake again;
* a lake that does not exist yet, or lacks the tables a page needs, surfaces as one exception
  type, :class:`DataUnavailable`, that pages turn into a friendly hint instead of a traceback.

Cached functions take only plain hashable arguments (tuples, dates, strings) and never create
widgets. Their results are shared: callers must treat the returned DataFrames as read-only
(use ``.assign``/``.copy`` before changing them).

Partition keys are the Dagster daily keys (``YYYY-MM-DD``) or ``__all__`` for unpartitioned
datasets (reference snapshots). Date filters apply to daily partitions; ``__all__`` rows are
always kept, because an unpartitioned snapshot belongs to every day.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb
import pandas as pd
import streamlit as st

from ordertower.lake import LAKE_ALIAS, LakeError, connect
from ordertower.settings import get_settings

UNPARTITIONED = "__all__"
#: Cache lifetime of query results: fresh enough for an ops page, cheap on reruns.
CACHE_TTL_SECONDS = 60
#: The hint pages show when the lake or its ops tables are not there yet.
DEMO_HINT = "Run `make demo` to simulate source files and ingest them into the lake."


class DataUnavailable(RuntimeError):
    """The lake, or a table a page needs, does not exist yet (nothing ingested so far)."""


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
        raise DataUnavailable(f"The lake could not be read ({_first_line(exc)}).") from exc
    finally:
        cur.close()


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


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


@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False)
def list_datasets() -> pd.DataFrame:
    """Every dataset the lake knows, for filters and captions.

    Columns: dataset, title, domain, owner, partitioned, freshness_sla_hours, rules,
    pii_columns (list), ingested (bool). Includes registered datasets never ingested and
    ingested datasets missing from the registry, so nothing silently disappears from the page.
    """
    return _query(
        """
        with registry as (
            select dataset, any_value(title) as title, any_value(domain) as domain,
                   any_value(owner) as owner, any_value(partitioned) as partitioned,
                   any_value(freshness_sla_hours) as freshness_sla_hours,
                   any_value(rules) as rules, any_value(pii_columns) as pii_columns
            from ops.datasets group by dataset
        ),
        ingested as (select distinct dataset from ops.ingest_runs)
        select coalesce(r.dataset, i.dataset) as dataset, r.title, r.domain, r.owner,
               r.partitioned, r.freshness_sla_hours, r.rules,
               coalesce(r.pii_columns, []::varchar[]) as pii_columns,
               i.dataset is not null as ingested
        from registry r full outer join ingested i using (dataset)
        order by dataset
        """
    )


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


@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False)
def quarantined_records(dataset: str, partition_key: str, limit: int = 500) -> pd.DataFrame:
    """The quarantined records of one dataset partition's latest run, as delivered.

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
