"""Typed reads: DuckDB reads a landing file whole and casts its canonical values in SQL.

The record-by-record readers (:mod:`pipelines.ingest.readers`) and the pandas coercion
(:mod:`pipelines.contracts.coerce`) decide every odd case: a quote left open, a value in a
format nobody agreed on, a number with a comma. Most records have none: a day's inventory
snapshot is tens of thousands of rows of plain text, digits and ISO dates. For those the work
is done by DuckDB's own reader and casts, over the whole file, and Python sees only the rest.

Which records go which way is decided so that both ways give the same result:

* **File screen** (bytes, C speed): a delimited file is read by DuckDB only when every line is
  one row of plain fields: valid UTF-8 without a byte-order mark, no quote, carriage return or
  NUL character, no blank line, every line within the record cap, a header naming each contract
  column once. Such a file splits the same way in Python's ``csv`` module and in DuckDB, and its
  physical line numbers are the row numbers. A file that fails the screen is read by
  :func:`~pipelines.ingest.readers.read_csv` as before; DuckDB refusing a row (a wrong number of
  fields) sends the file there too.
* **Canonical values** (SQL, per value): a value is cast in SQL only when it is written in the
  one form where DuckDB's cast and the pandas coercion cannot differ (:func:`column_sql`): an
  integer or a decimal of at most 15 digits, an ISO-8601 timestamp with
  ``Z`` or a whole-quarter-hour offset in pandas' year range, a ``YYYY-MM-DD`` date, ``true`` or
  ``false``. A record with any other value (`` 12``, ``1,5``, ``yes``, a naive timestamp in a
  column with a default zone) goes to the pandas coercion whole, with its text as read.

Both ways end in the same typed frame, which the contract's rules then check in one pass
(:func:`pipelines.contracts.enforce.enforce`). ``tests/test_typed_reads.py`` holds the two ways
equal on the hostile corpus, the simulated defects and batches of awkward values.
``ORDERTOWER_TYPED_READS=0`` turns this path off (every record through Python).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from pipelines.contracts.model import Column, Contract

_BOM = b"\xef\xbb\xbf"

#: the values each logical type casts in SQL; anything else goes to the pandas coercion
_INTEGER = r"-?[0-9]{1,15}"
_DECIMAL = r"-?[0-9]{1,15}(\.[0-9]{1,15})?"
_NEGATIVE_ZERO = r"-[0.]*"  # pandas reads "-0" as 0, DuckDB as -0.0
_DATE = r"[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
_TIMESTAMP = (
    _DATE + r"T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?"
    r"(Z|[+-](0[0-9]|1[0-4]):(00|15|30|45))"
)
#: pandas holds nanosecond timestamps of years 1677..2262 only; the years within, both ends
#: excluded, cast in SQL
_YEARS = ("1678", "2261")


def enabled() -> bool:
    return os.environ.get("ORDERTOWER_TYPED_READS", "1").strip().lower() not in ("0", "false", "no")


def connection() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB for typed reads (no lake, no extension loading)."""
    from ordertower.lake import NO_AUTO_EXTENSIONS

    return duckdb.connect(config=NO_AUTO_EXTENSIONS)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _years(value: str) -> str:
    return f"substr({value}, 1, 4) between '{_YEARS[0]}' and '{_YEARS[1]}'"


def column_sql(column: Column, value: str) -> tuple[str, str]:
    """``(cast, canonical)`` SQL for one contract column whose text is ``value`` (VARCHAR).

    ``canonical`` is true where the cast gives what :func:`pipelines.contracts.coerce.
    coerce_column` would, null or a value in the type's one agreed form; ``cast`` is the typed
    value there (and anything on other rows, which are coerced in Python instead)."""
    kind = column.logical_type
    null = f"{value} is null"
    if kind == "integer":
        ok = f"regexp_full_match({value}, '{_INTEGER}')"
        return f"try_cast({value} as bigint)", f"({null} or {ok})"
    if kind == "number":
        # at most 15 significant digits: an exact integer over an exact power of ten, which
        # every parser rounds alike (pandas is 1 ulp off on some longer ones)
        ok = (
            f"(regexp_full_match({value}, '{_DECIMAL}') "
            f"and length(regexp_replace({value}, '[-.]', '', 'g')) <= 15 "
            f"and not regexp_full_match({value}, '{_NEGATIVE_ZERO}'))"
        )
        return f"try_cast({value} as double)", f"({null} or {ok})"
    if kind == "timestamp":
        ok = (
            f"(regexp_full_match({value}, '{_TIMESTAMP}') and {_years(value)} "
            f"and try_cast({value} as timestamptz) is not null)"
        )
        return f"try_cast({value} as timestamptz)", f"({null} or {ok})"
    if kind == "date":
        ok = (
            f"(regexp_full_match({value}, '{_DATE}') and {_years(value)} "
            f"and try_cast({value} as date) is not null)"
        )
        return f"try_cast({value} as date)", f"({null} or {ok})"
    if kind == "boolean":
        return f"({value} = 'true')", f"({null} or {value} in ('true', 'false'))"
    if kind == "array":  # a list is never text
        return "null::varchar[]", null
    return value, "true"


def typed_frame(table: pa.Table, contract: Contract) -> pd.DataFrame:
    """An Arrow table of SQL-cast contract columns as the pandas coercion types them."""
    mapper = {pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype()}.get
    frame = table.to_pandas(types_mapper=mapper, date_as_object=True)
    out = {}
    for column in contract.columns:
        if column.name not in frame.columns:
            continue
        series = frame[column.name]
        kind = column.logical_type
        if kind == "timestamp":
            series = series.astype("datetime64[ns, UTC]")
        elif kind == "integer":
            series = series.astype("Int64")
        elif kind == "number":
            series = series.astype("float64")
        elif kind == "boolean":
            series = series.astype("boolean")
        else:  # text, dates and lists: Python objects, None for null
            series = series.astype(object).where(series.notna(), None)
        out[column.name] = series
    return pd.DataFrame(out, index=frame.index)


@dataclass
class TypedFile:
    """One file read by DuckDB, its records in file order: those whose every value was cast in
    SQL (``typed``, indexed by their row in the file) and the others as the record-by-record
    reader would have given them (text for the pandas coercion, at ``python_at``)."""

    record_nos: list[int]
    raws: list[str]
    typed: pd.DataFrame
    python_rows: list[dict[str, Any]] = field(default_factory=list)
    python_at: list[int] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def received(self) -> int:
        return len(self.record_nos)


def _screened_header(
    data: bytes, columns: tuple[str, ...], delimiter: str, cap: int
) -> list[str] | None:
    """The header of a delimited file every line of which is one row of plain fields, or None
    when the file needs the record-by-record reader (see the module doc)."""
    if (
        not data
        or not data.endswith(b"\n")
        or data.startswith((_BOM, b"\n"))
        or b"\n\n" in data
        or any(ch in data for ch in (b'"', b"\r", b"\x00"))
    ):
        return None
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if len(data) > cap and max(map(len, data.split(b"\n"))) + 1 > cap:
        return None
    header = [h.strip() for h in data[: data.index(b"\n")].decode().split(delimiter)]
    if len(header) < 2 or len(set(header)) != len(header) or not set(columns) <= set(header):
        return None
    return header


def typed_csvs(
    con: duckdb.DuckDBPyConnection,
    paths: list[Path],
    contract: Contract,
    delimiter: str,
    cap: int,
) -> dict[Path, TypedFile]:
    """Read delimited landing files in DuckDB, files of one header in one query. A file left
    out of the answer needs the record-by-record reader
    (:func:`~pipelines.ingest.readers.read_csv`)."""
    groups: dict[tuple[str, ...], list[tuple[Path, list[str]]]] = {}
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError:
            continue
        header = _screened_header(data, contract.column_names, delimiter, cap)
        if header is not None:
            lines = data.decode("utf-8").split("\n")[1:-1]
            groups.setdefault(tuple(header), []).append((path, lines))
    out: dict[Path, TypedFile] = {}
    for header, files in groups.items():
        read = _read_group(con, list(header), files, contract, delimiter, cap)
        if read is None and len(files) > 1:  # a file DuckDB refused: find it, read the rest
            for one in files:
                out.update(_read_group(con, list(header), [one], contract, delimiter, cap) or {})
        else:
            out.update(read or {})
    return out


def typed_csv(
    con: duckdb.DuckDBPyConnection, path: Path, contract: Contract, delimiter: str, cap: int
) -> TypedFile | None:
    """One delimited file read in DuckDB, or None (see :func:`typed_csvs`)."""
    return typed_csvs(con, [path], contract, delimiter, cap).get(path)


def _read_group(
    con: duckdb.DuckDBPyConnection,
    header: list[str],
    files: list[tuple[Path, list[str]]],
    contract: Contract,
    delimiter: str,
    cap: int,
) -> dict[Path, TypedFile] | None:
    """Files of one header in one query: each value's text, whether its record is canonical,
    and (where it is) the record's typed values; None when DuckDB refuses a row."""
    spec = "{" + ", ".join(f"'{h.replace(chr(39), chr(39) * 2)}': 'VARCHAR'" for h in header) + "}"
    delim = delimiter.replace("'", "''")
    casts, canonical = [], []
    for i, column in enumerate(contract.columns):
        cast, ok = column_sql(column, _q(column.name))
        casts.append(f"case when __ok then {cast} end as __t{i}")
        canonical.append(ok)
    names = ", ".join(_q(c) for c in contract.column_names)
    sql = (
        f"select __file, {names}, __ok, {', '.join(casts)} from ("
        f"select __file, {names}, {' and '.join(canonical)} as __ok from read_csv(?, "
        f"columns={spec}, header=true, auto_detect=false, delim='{delim}', quote='', "
        f"escape='', strict_mode=true, null_padding=false, filename='__file', "
        f"max_line_size={max(cap + 16, 2_097_152)}))"
    )
    try:
        table = con.execute(sql, [[str(p) for p, _ in files]]).to_arrow_table()
    except duckdb.Error:  # a row DuckDB will not split as the header says: Python reads it
        return None
    sizes = [len(lines) for _, lines in files]
    if table.num_rows != sum(sizes):
        return None
    ok = table.column("__ok").to_numpy(zero_copy_only=False).astype(bool)
    typed_all = table.filter(pa.array(ok)).select([f"__t{i}" for i in range(len(contract.columns))])
    typed_all = typed_frame(typed_all.rename_columns(list(contract.column_names)), contract)
    extra = [h for h in header if h not in contract.column_names]
    out: dict[Path, TypedFile] = {}
    start = typed_start = 0
    for (path, lines), size in zip(files, sizes, strict=True):
        part = table.slice(start, size)
        if size and part.column("__file")[0].as_py() != str(path):
            return None
        flags = ok[start : start + size]
        keep = [i for i in range(size) if flags[i]]
        block = typed_all.iloc[typed_start : typed_start + len(keep)]
        block.index = pd.Index(keep, dtype="int64")
        read = TypedFile(record_nos=list(range(2, 2 + size)), raws=lines, typed=block)
        other = [i for i in range(size) if not flags[i]]
        if other:
            rows = part.select(list(contract.column_names)).take(pa.array(other, type=pa.int64()))
            read.python_rows = rows.to_pylist()
            read.python_at = other
        if extra:
            read.warnings.append(f"columns not in the contract ignored: {', '.join(extra)}")
        out[path] = read
        start += size
        typed_start += len(keep)
    return out
