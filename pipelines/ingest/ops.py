"""Operational tables of the lake: the ingestion ledger, the quarantine and contract results.

These are written by ingestion only and read by the data-quality page and asset checks.

``ops.ingest_runs``
    One row per dataset, partition and run: files read, records received, landed and
    quarantined. The latest row per (dataset, partition_key) is the current state; older rows
    are the history. ``received = landed + quarantined`` always (the conservation law).
``ops.datasets``
    The registry of landed datasets as their contracts declare them (owner, freshness SLA...),
    rewritten at every ingestion so the dashboards never need to parse YAML.
``ops.contract_results``
    One row per contract rule evaluated (by Great Expectations) per dataset, partition and run.
``ops.stream_failures`` / ``ops.stream_heartbeat``
    Written by ``ordertower stream`` (``pipelines/stream/health.py``): every permanent lake
    failure it dead-lettered a batch for, and one liveness row per consumer.
``quarantine.rejected_records``
    Every record that did not land: the original text, where it came from and why
    (``reasons`` in full, ``rules`` the same without the offending values, ``reason`` the first).
"""

from __future__ import annotations

import duckdb

UNPARTITIONED = "__all__"

DDL = {
    "ops.ingest_runs": """
        create table if not exists ops.ingest_runs (
            run_id varchar not null,
            dataset varchar not null,
            partition_key varchar not null,
            files integer not null,
            received bigint not null,
            landed bigint not null,
            quarantined bigint not null,
            unknown_codes bigint not null,
            max_event_ts timestamptz,
            started_at timestamptz not null,
            finished_at timestamptz not null
        )""",
    "ops.datasets": """
        create table if not exists ops.datasets (
            dataset varchar not null,
            title varchar,
            description varchar,
            domain varchar,
            owner varchar,
            contract_version varchar,
            raw_table varchar not null,
            partitioned boolean not null,
            freshness_sla_hours double,
            rules integer not null,
            pii_columns varchar[],
            columns varchar[]
        )""",
    "ops.contract_results": """
        create table if not exists ops.contract_results (
            run_id varchar not null,
            dataset varchar not null,
            partition_key varchar not null,
            rule varchar not null,
            column_name varchar,
            expectation varchar not null,
            severity varchar not null,
            success boolean not null,
            unexpected_count bigint not null,
            evaluated_rows bigint not null,
            checked_at timestamptz not null
        )""",
    # the live stream's health (pipelines/stream/health.py): permanent lake failures of
    # ``ordertower stream`` and one heartbeat row per consumer
    "ops.stream_failures": """
        create table if not exists ops.stream_failures (
            failure_id varchar not null,
            failed_at timestamptz not null,
            consumer_id varchar not null,
            host varchar,
            pid integer,
            queue varchar not null,
            stage varchar not null,
            batch_id varchar,
            messages integer not null,
            failure_class varchar not null,
            kind varchar not null,
            attempts integer not null,
            message varchar not null
        )""",
    "ops.stream_heartbeat": """
        create table if not exists ops.stream_heartbeat (
            consumer_id varchar not null,
            host varchar,
            pid integer,
            queue varchar not null,
            state varchar not null,
            started_at timestamptz not null,
            last_beat_at timestamptz not null,
            last_batch_at timestamptz,
            last_message_at timestamptz,
            last_compact_at timestamptz,
            batches bigint not null,
            received bigint not null,
            landed bigint not null,
            dead_lettered bigint not null,
            lake_retries bigint not null
        )""",
    "quarantine.rejected_records": """
        create table if not exists quarantine.rejected_records (
            run_id varchar not null,
            dataset varchar not null,
            partition_key varchar not null,
            source_file varchar not null,
            record_no bigint,
            reason varchar not null,
            reasons varchar[] not null,
            raw_record varchar,
            quarantined_at timestamptz not null,
            rules varchar[]
        )""",
}

#: The current state per dataset and partition (the latest run of each).
CURRENT_INGEST_VIEW = """
    create or replace view ops.ingest_status as
    select * exclude (rn) from (
        select *, row_number() over (
            partition by dataset, partition_key order by finished_at desc, run_id desc) as rn
        from ops.ingest_runs
    ) where rn = 1
"""


#: Columns added after a table was first released: lakes created earlier gain them in place.
ADDED_COLUMNS = (
    ("ops.contract_results", "severity", "varchar"),
    ("quarantine.rejected_records", "rules", "varchar[]"),
    # the contract's column order: the header of the landing CSVs, to mask quarantined lines
    ("ops.datasets", "columns", "varchar[]"),
)


#: the lakes (by catalog) whose ``ops.ingest_status`` view this process has (re)defined
_views_defined: set[str] = set()


def _existing_columns(con: duckdb.DuckDBPyConnection) -> set[tuple[str, str]]:
    """(schema.table, column) of every ops and quarantine table and view, in one catalog read."""
    rows = con.execute(
        "select schema_name || '.' || table_name, column_name from duckdb_columns() "
        "where database_name = current_database() and schema_name in ('ops', 'quarantine')"
    ).fetchall()
    return {(table, column) for table, column in rows}


def ensure_ops_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create the ops and quarantine tables and views if they do not exist yet, and add the
    columns of :data:`ADDED_COLUMNS` to older lakes.

    Every ingestion step calls this: it reads the catalog once and changes only what is
    missing (each DDL statement is a catalog transaction on DuckLake, ten of them a tenth of a
    second per step). The view is re-defined once per process and lake, so a changed
    definition reaches every existing lake."""
    existing = _existing_columns(con)
    tables = {table for table, _ in existing}
    for table, ddl in DDL.items():
        if table not in tables:
            con.execute(ddl)
    for table, column, kind in ADDED_COLUMNS:
        if (table, column) not in existing:
            con.execute(f"alter table {table} add column if not exists {column} {kind}")
    catalog = con.execute(
        "select path from duckdb_databases() where database_name = current_database()"
    ).fetchone()
    lake_id = str(catalog[0]) if catalog else ""
    if "ops.ingest_status" not in tables or lake_id not in _views_defined:
        con.execute(CURRENT_INGEST_VIEW)
        _views_defined.add(lake_id)
