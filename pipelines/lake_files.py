"""Check that every Parquet file the lake's catalog lists is there and whole.

DuckLake answers ``count(*)`` from its catalog, so a data file that was truncated, overwritten
or deleted goes unnoticed until a query reads it, and then fails deep inside a run or a page.
``ordertower materialize`` and ``ordertower status`` check first (:func:`lake_damage`) and
stop with one paragraph that names the table, the file and what to do.

The check is cheap (a stat and two reads of 8 bytes per file, no Parquet decoding): the file
exists, has the size the catalog recorded, starts and ends with the Parquet magic ``PAR1`` and
its footer length is the one recorded. Files on object storage (``s3://``...) are not checked.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import duckdb

from ordertower.lake import LAKE_ALIAS

MAGIC = b"PAR1"


class LakeDamaged(RuntimeError):
    """A data file of the lake is missing or damaged (the message names it and says what to do)."""


@dataclass(frozen=True)
class Damage:
    table: str  # schema.table
    path: str
    problem: str


def _problem(path: str, size: int | None, footer: int | None) -> str | None:
    """What is wrong with the file at ``path`` against the catalog's record, or None."""
    try:
        actual = os.path.getsize(path)
        with open(path, "rb") as fh:
            head = fh.read(4)
            if actual >= 8:
                fh.seek(actual - 8)
            tail = fh.read(8)
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    if size is not None and actual != size:
        return f"{'truncated' if actual < size else 'grown'}: {actual:,} of {size:,} bytes"
    if head != MAGIC or tail[-4:] != MAGIC:
        return "not a Parquet file (no PAR1 magic bytes)"
    if footer is not None and int.from_bytes(tail[:4], "little") != footer:
        return "overwritten (its footer is not the one the catalog recorded)"
    return None


_FILES = """
with root as (
    select value as data_path from {meta}.ducklake_metadata
    where key = 'data_path' and scope is null
),
tables as (
    select t.table_id, s.schema_name || '.' || t.table_name as name,
           case when t.path_is_relative then
               case when s.path_is_relative then root.data_path || s.path else s.path end
               || t.path
           else t.path end as table_path
    from {meta}.ducklake_table t
    join {meta}.ducklake_schema s using (schema_id)
    cross join root
    where t.end_snapshot is null and s.end_snapshot is null
),
files as (
    select table_id, path, path_is_relative, file_size_bytes, footer_size
    from {meta}.ducklake_data_file where end_snapshot is null
    union all
    select table_id, path, path_is_relative, file_size_bytes, footer_size
    from {meta}.ducklake_delete_file where end_snapshot is null
)
select t.name,
       case when f.path_is_relative then t.table_path || f.path else f.path end as path,
       f.file_size_bytes, f.footer_size
from files f join tables t using (table_id)
order by 1, 2
"""


def damaged_files(con: duckdb.DuckDBPyConnection) -> list[Damage]:
    """Every data and delete file of the lake's current tables that is missing or damaged
    (one read of the catalog, then a stat and two small reads per file)."""
    rows = con.execute(_FILES.format(meta=f"__ducklake_metadata_{LAKE_ALIAS}")).fetchall()
    found: list[Damage] = []
    for table, path, size, footer in rows:
        if not path or "://" in path:
            continue
        problem = _problem(path, size, footer)
        if problem:
            found.append(Damage(table, path, problem))
    return found


#: Schemas whose tables ``ordertower materialize`` rebuilds from scratch (raw and quarantine
#: from the landing zone, the rest with dbt or the ML assets). ops.* (run history, audit log,
#: outbox) and the live stream's raw table exist nowhere else: only a backup brings them back.
REBUILDABLE = ("raw", "quarantine", "staging", "intermediate", "marts", "ml")
NOT_REBUILDABLE = ("raw.carrier_events_stream",)


def rebuildable(table: str) -> bool:
    return table.split(".")[0] in REBUILDABLE and table not in NOT_REBUILDABLE


def describe(damage: list[Damage]) -> str:
    """One paragraph: which files of which tables, and what to do."""
    first = damage[0]
    more = f" (and {len(damage) - 1} more damaged file(s))" if len(damage) > 1 else ""
    tables = sorted({d.table for d in damage})
    lost = [t for t in tables if not rebuildable(t)]
    if lost:
        then = (
            f"{', '.join(lost)} exist{'s' if len(lost) == 1 else ''} nowhere else, so only a "
            "backup brings back its rows"
        )
    else:
        then = (
            "without a backup, `ordertower materialize --rebuild-damaged` drops "
            f"{', '.join(tables)} and rebuilds {'them' if len(tables) > 1 else 'it'} "
            "(raw and quarantine from the landing zone, the rest with dbt)"
        )
    return (
        f"the lake is damaged: data file {first.path} of table {first.table} is "
        f"{first.problem}{more}. Nothing that reads {'these tables' if len(tables) > 1 else 'it'} "
        f"can run until the file is whole: restore it from a backup of the lake's data path; {then}. "
        "`ordertower status` lists every damaged file."
    )


def check_lake_files() -> None:
    """Raise :class:`LakeDamaged` (one paragraph) when a data file of the lake is damaged."""
    damage = lake_damage()
    if damage:
        raise LakeDamaged(damage)


def find_damage() -> list[Damage]:
    """:func:`damaged_files` of the configured lake (none while there is no lake yet)."""
    from ordertower.lake import LakeError, connect

    try:
        con = connect(read_only=True)
    except LakeError:  # no lake yet: nothing to check
        return []
    try:
        return damaged_files(con)
    finally:
        con.close()


def lake_damage() -> str | None:
    """The paragraph that names the lake's damaged files, or None (no lake yet, or all whole)."""
    damage = find_damage()
    return describe(damage) if damage else None


def drop_damaged(damage: list[Damage]) -> list[str]:
    """Drop the tables of ``damage`` so the next materialisation rebuilds them; refuses (with
    :class:`LakeDamaged`) when one of them cannot be rebuilt. Returns the tables dropped."""
    from ordertower.lake import connect

    tables = sorted({d.table for d in damage})
    if not all(rebuildable(t) for t in tables):
        raise LakeDamaged(describe(damage))
    con = connect()
    try:
        for table in tables:
            schema, name = table.split(".")
            con.execute(f'drop table if exists "{schema}"."{name}"')
    finally:
        con.close()
    return tables
