"""Typed reads: DuckDB reads landing files in bulk and casts their canonical values in SQL.

The record-by-record readers (:mod:`pipelines.ingest.readers`), the carrier normalisers
(:mod:`pipelines.ingest.carriers`) and the pandas coercion (:mod:`pipelines.contracts.coerce`)
decide every odd case: a quote left open, a key sent twice, a value in a format nobody agreed
on. Most records have none: a day's inventory snapshot is tens of thousands of rows of plain
text, digits and ISO dates. For those the work is done by DuckDB over the whole batch, and
Python sees only the rest.

Which records go which way is decided so that both ways give the same result:

* **Delimited files** (:func:`typed_csvs`): read by DuckDB only when a byte screen shows every
  line is one row of plain fields: valid UTF-8 without a byte-order mark, no quote, carriage
  return or NUL character, no blank line, every line within the record cap, a header naming
  each contract column once. Such a file splits the same way in Python's ``csv`` module and in
  DuckDB, and its physical line numbers are the row numbers. A file that fails the screen, or
  a row DuckDB refuses, sends the file to :func:`~pipelines.ingest.readers.read_csv`.
* **JSON lines** (:func:`typed_jsonls`): DuckDB parses each line; a record is cast in SQL when
  Python's parser reads it the same way and finds no fault (no escapes, trailing commas or
  NaN/Infinity, no key twice in any object, objects only where the feed nests them); every
  other line goes to :func:`~pipelines.ingest.readers.read_json_line`.
* **Carrier feeds** (:func:`typed_parcel_webhooks`, :func:`typed_rail`): the same, with the
  normaliser's mapping in SQL for the records it takes without judgement.
* **Canonical values** (:func:`column_sql`, :func:`json_column_sql`): a value is cast in SQL
  only when it is written in the one form where DuckDB's cast and the pandas coercion cannot
  differ: an integer or a decimal of at most 15 digits, an ISO-8601 timestamp with ``Z`` or a
  whole-quarter-hour offset in pandas' year range, a ``YYYY-MM-DD`` date, ``true`` or
  ``false``, text of the right JSON type. A record with any other value (`` 12``, ``1,5``,
  ``yes``, a naive timestamp in a column with a default zone) goes to the pandas coercion
  whole, as Python reads it.

Both ways end in the same typed frame, which the contract's rules then check in one pass
(:func:`pipelines.contracts.enforce.enforce`). ``tests/test_typed_reads.py`` holds the two ways
equal, table for table, on the hostile corpus, the simulated defects and worlds of awkward and
damaged files. ``ORDERTOWER_TYPED_READS=0`` turns this path off (every record through Python).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from ordertower.lake import quote_identifier
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
    """An in-memory DuckDB for typed reads (no lake, no extension loading); one thread in an
    ingestion worker process, whose siblings take the other cores."""
    import multiprocessing

    from ordertower.lake import NO_AUTO_EXTENSIONS

    config: dict[str, object] = dict(NO_AUTO_EXTENSIONS)
    if multiprocessing.parent_process() is not None:
        config["threads"] = 1
    return duckdb.connect(config=config)


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


def _typed_rows(result: pa.Table, contract: Contract, names: list[str]) -> tuple[Any, pd.DataFrame]:
    """A query's ``__ok`` flags and, of its rows where they hold, the casts ``__t0``,
    ``__t1``, ... as the typed frame of the contract columns ``names``."""
    ok = result.column("__ok").to_numpy(zero_copy_only=False).astype(bool)
    casts = result.filter(pa.array(ok)).select([f"__t{i}" for i in range(len(names))])
    return ok, typed_frame(casts.rename_columns(names), contract)


def _split_delimited(
    files: list[tuple[Path, list[str]]],
    result: pa.Table,
    ok: Any,
    typed_all: pd.DataFrame,
    columns: tuple[str, ...],
    header: list[str],
) -> dict[Path, TypedFile] | None:
    """Each delimited file's share of one query over several (``result`` rows in file and line
    order, with ``__file`` and the text ``columns``): its typed records and, as text, the
    others; None when the rows are not where the files say."""
    extra = [h for h in header if h not in columns]
    out: dict[Path, TypedFile] = {}
    start = typed_start = 0
    for path, lines in files:
        size = len(lines)
        part = result.slice(start, size)
        if size and part.column("__file")[0].as_py() != str(path):
            return None
        flags = ok[start : start + size]
        keep = [i for i in range(size) if flags[i]]
        block = typed_all.iloc[typed_start : typed_start + len(keep)]
        block.index = pd.Index(keep, dtype="int64")
        read = TypedFile(record_nos=list(range(2, 2 + size)), raws=lines, typed=block)
        other = [i for i in range(size) if not flags[i]]
        if other:
            rows = part.select(list(columns)).take(pa.array(other, type=pa.int64()))
            read.python_rows = rows.to_pylist()
            read.python_at = other
        if extra:
            read.warnings.append(f"columns not in the contract ignored: {', '.join(extra)}")
        out[path] = read
        start += size
        typed_start += len(keep)
    return out


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
        cast, ok = column_sql(column, quote_identifier(column.name))
        casts.append(f"case when __ok then {cast} end as __t{i}")
        canonical.append(ok)
    names = ", ".join(quote_identifier(c) for c in contract.column_names)
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
    ok, typed_all = _typed_rows(table, contract, list(contract.column_names))
    return _split_delimited(files, table, ok, typed_all, contract.column_names, header)


# ------------------------------------------------------------------------------ JSON lines

#: a line is left to Python's parser when its text could hold something DuckDB's JSON reader
#: accepts and Python's refuses or reads differently: an escape (a lone surrogate decodes only
#: in Python), a trailing comma, a bare NaN, Inf or Infinity in any case (Python refuses
#: them), a key followed by spaces before its colon (the key count below assumes none)
_JSON_SUSPECT = r',\s*[}\]]|[:,\[]\s*[-+]?(?i:nan|inf|infinity)\s*[,}\]]|"\s+:'


@dataclass
class LazyItem:
    """A nested item (an order line) as quarantine stores it: the item Python's parser reads
    from its record's line, parsed only if the item is rejected."""

    line: str
    field: str
    index: int

    def obj(self) -> Any:
        from pipelines.ingest.readers import parse_json_object

        return parse_json_object(self.line)[self.field][self.index]


@dataclass
class TypedChildren:
    """The items of a nested list (``lines``) of one file's typed records, in order: how many
    each record holds, which were cast in SQL (``typed``, in order) and the others as Python
    reads them (flattened, with the record's key)."""

    counts: list[int]
    ok: list[bool]
    typed: pd.DataFrame
    python_rows: list[dict[str, Any]]


@dataclass
class TypedJsonFile:
    """One JSON-lines file: the records cast in SQL and, in ``parsed``, the lines Python read
    (records, rejects and blank lines, exactly as :func:`~pipelines.ingest.readers.read_jsonl`
    would)."""

    parsed: Any  # readers.ParsedFile
    record_nos: list[int]
    raws: list[str]
    typed: pd.DataFrame  # RangeIndex, in the order of record_nos
    children: dict[str, TypedChildren] = field(default_factory=dict)


def _path(*parts: str) -> str:
    return "$." + ".".join('"' + part + '"' for part in parts)


def _parts(path: str) -> tuple[str, ...]:
    """The keys of a path of :func:`_path`."""
    return tuple(part.strip('"') for part in path[2:].split('"."'))


class _Paths:
    """The JSONPaths read from each line (or item), each once: one ``from_json`` parses the
    line into a structure of its top-level values, each kept as JSON (an object's members by a
    ``from_json`` of the object's text), a column per path (``__v<k>``), and each value's JSON
    type and text (``__y<k>``, ``__s<k>``) are read off the value's own text, with no further
    parse.

    A value's text is DuckDB's serialisation of it: a string in quotes, escaped only where it
    must be (never in a typed read: a line with a backslash is Python's), ``true`` or
    ``false``, a number, an object or an array, and NULL for JSON null as for a key that is not
    there (so a key's presence is read from ``json_keys``); its first character is its type. Numbers
    are one type here (``NUMBER``): every number rule accepts all of them and checks the text.
    ``json_type`` and ``->> '$'`` on each value parse it again, value by value: that was most
    of a typed read's time."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    def _k(self, path: str) -> int:
        if path not in self.paths:
            self.paths.append(path)
        return self.paths.index(path) + 1

    def at(self, path: str) -> str:
        """The path's JSON value (NULL when absent)."""
        return f"__v{self._k(path)}"

    def type(self, path: str) -> str:
        """The path's JSON type: VARCHAR, OBJECT, ARRAY, NULL, BOOLEAN or NUMBER (NULL when
        absent)."""
        return f"__y{self._k(path)}"

    def text(self, path: str) -> str:
        """The path's text as ``json_extract_string`` gives it: a string's value, the JSON of
        any other value; NULL for an absent path and for JSON null."""
        return f"__s{self._k(path)}"

    def _keys(self, parent: tuple[str, ...]) -> str:
        """The ``from_json`` structure of the keys read under ``parent``, each as JSON."""
        keys = sorted(
            {
                p[len(parent)]
                for p in map(_parts, self.paths)
                if p[: len(parent)] == parent and len(p) > len(parent)
            }
        )
        return "'{" + ", ".join(f'"{k}": "JSON"' for k in keys) + "}'"

    def lists(self, source: str) -> str:
        """The record's top-level values, each as JSON, in one parse (``from_json`` into a
        structure; a path's JSON null and its absence are both NULL there)."""
        return f"from_json({source}, {self._keys(())}) as __vl"

    def _value(self, parts: tuple[str, ...]) -> str:
        # an object's members: its text parsed again (NULL unless it is an object)
        if len(parts) == 1:
            return f'__vl."{parts[0]}"'
        return f'from_json({self._value(parts[:-1])}, {self._keys(parts[:-1])})."{parts[-1]}"'

    def unpacked(self) -> str:
        # as text: a slice of a JSON value would be JSON again
        return ", ".join(
            f"{self._value(_parts(path))}::varchar as __v{k}"
            for k, path in enumerate(self.paths, start=1)
        )

    def described(self) -> str:
        """Each value's type and text, from the unpacked values."""
        out = []
        for k in range(1, len(self.paths) + 1):
            v = f"__v{k}"
            out.append(
                f"case when {v} is null then null else case left({v}, 1) "
                "when '\"' then 'VARCHAR' when '{' then 'OBJECT' when '[' then 'ARRAY' "
                "when 'n' then 'NULL' when 't' then 'BOOLEAN' when 'f' then 'BOOLEAN' "
                f"else 'NUMBER' end end as __y{k}"
            )
            out.append(
                f"case when {v} is null or {v} = 'null' then null "
                f"when left({v}, 1) <> '\"' then {v} "
                f"when contains({v}, '\\') then {v} ->> '$' else {v}[2:-2] end as __s{k}"
            )
        return ", ".join(out)

    def names(self) -> str:
        return ", ".join(f"__v{k}, __y{k}, __s{k}" for k in range(1, len(self.paths) + 1))


#: a contract column's source in a JSON record: SQL for its JSON value, type and text
Source3 = tuple[str, str, str]


def _columns(
    contract: Contract, paths: _Paths, objects: tuple[str, ...], skip: tuple[str, ...] = ()
) -> tuple[list[tuple[Column, Source3]], list[str]]:
    """Each contract column's JSON value, type and text as Python's ``flatten`` finds it, and
    the conditions under which that is the only place it could come from.

    A column ``<object>_<key>`` of a declared object comes from the object's key, and the
    record must not also hold a top-level ``<object>_<key>`` (Python would keep the later
    one); any other column is a top-level key whose value is not an object."""
    out, unique = [], []
    for column in contract.columns:
        if column.name in skip:
            continue
        top = _path(column.name)
        owner = next((o for o in objects if column.name.startswith(o + "_")), None)
        if owner is None:
            kind = paths.type(top)
            scalar = f"{kind} <> 'OBJECT'"
            out.append(
                (
                    column,
                    (
                        f"case when {scalar} then {paths.at(top)} end",
                        f"case when {scalar} then {kind} end",
                        f"case when {scalar} then {paths.text(top)} end",
                    ),
                )
            )
            unique.append(f"coalesce({scalar}, true)")
        else:
            member = _path(owner, column.name[len(owner) + 1 :])
            out.append((column, (paths.at(member), paths.type(member), paths.text(member))))
            unique.append(f"not list_contains(__keys, {_sql_text(column.name)})")
    return out, unique


def json_column_sql(column: Column, value: str, jt: str, text: str) -> tuple[str, str]:
    """``(cast, canonical)`` SQL for a contract column whose JSON value is ``value`` (JSON, or
    NULL when absent), its JSON type ``jt`` and its text ``text`` (``->> '$'``, '' as NULL):
    the JSON types and forms for which DuckDB's cast gives what the pandas coercion gives
    Python's parse of the same line."""
    kind = column.logical_type
    cast, form = column_sql(column, text)
    absent = f"({value} is null or {jt} = 'NULL' or ({jt} = 'VARCHAR' and {text} is null))"
    if kind in ("integer", "number"):
        return (
            cast,
            f"({absent} or ({jt} in ('NUMBER', 'VARCHAR') and {form}))",
        )
    if kind in ("timestamp", "date"):
        return cast, f"({absent} or ({jt} = 'VARCHAR' and {form}))"
    if kind == "boolean":
        return f"({text} = 'true')", f"({absent} or {jt} = 'BOOLEAN')"
    if kind == "array":
        items = f"json_type({value}, '$[*]')"
        return (
            f"case when {jt} = 'ARRAY' then json_extract_string({value}, '$[*]') end",
            f"({value} is null or {jt} = 'NULL' or ({jt} = 'ARRAY' and "
            f"coalesce(list_bool_and(list_transform({items}, t -> t = 'VARCHAR')), true)))",
        )
    return text, f"({absent} or {jt} = 'VARCHAR')"


def _stages(columns: list[tuple[Column, Source3]]) -> tuple[str, list[str], list[str]]:
    """The select list of the columns' values, JSON types and texts (``__c``, ``__j``,
    ``__x``: '' as NULL), and the casts and canonical tests over them."""
    values = ", ".join(
        f"{value} as __c{i}, {kind} as __j{i}, nullif({text}, '') as __x{i}"
        for i, (_, (value, kind, text)) in enumerate(columns)
    )
    casts, canonical = [], []
    for i, (column, _) in enumerate(columns):
        cast, ok = json_column_sql(column, f"__c{i}", f"__j{i}", f"__x{i}")
        casts.append(cast)
        canonical.append(ok)
    return values, casts, canonical


def _count(text: str, what: str) -> str:
    """How many times ``what`` occurs in ``text`` (not overlapping): the pieces a split on it
    makes, less one (a split points into the text; a ``replace`` would copy it)."""
    return f"(len(string_split({text}, '{what}')) - 1)"


def _distinct(keys: str) -> str:
    return f"(len({keys}) = len(list_distinct({keys})))"


def _json_files(paths: list[Path]) -> tuple[list[tuple[Path, list[str]]], pa.Table]:
    """The lines of each JSON-lines file DuckDB may read (valid UTF-8 with a final newline, no
    byte-order mark, no carriage return), and all of them as one Arrow table: file, line
    number, text."""
    files: list[tuple[Path, list[str]]] = []
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError:
            continue
        if not data.endswith(b"\n") or data.startswith(_BOM) or b"\r" in data:
            continue
        try:
            files.append((path, data.decode("utf-8").split("\n")[:-1]))
        except UnicodeDecodeError:
            continue
    fidx, recs, texts = [], [], []
    for f, (_, lines) in enumerate(files):
        fidx += [f] * len(lines)
        recs += range(1, len(lines) + 1)
        texts += lines
    table = pa.table(
        {
            "__f": pa.array(fidx, pa.int32()),
            "__rec": pa.array(recs, pa.int64()),
            "line": pa.array(texts, pa.string()),
        }
    )
    return files, table


def _plain_json(cap: int) -> str:
    """SQL condition on ``line``: JSON Python's parser reads as DuckDB does (see
    :data:`_JSON_SUSPECT`), within the record cap and the nesting limit."""
    from pipelines.ingest.readers import MAX_JSON_DEPTH

    return (
        f"line like '{{%}}' and strlen(line) <= {int(cap)} "
        f"and {_count('line', '{')} + {_count('line', '[')} <= {MAX_JSON_DEPTH} "
        f"and not contains(line, '\\') and not regexp_matches(line, '{_JSON_SUSPECT}') "
        "and json_valid(line)"
    )


def _json_split(
    files: list[tuple[Path, list[str]]],
    result: pa.Table,
    ok: Any,
    typed_all: pd.DataFrame,
    cap: int,
    kids: dict[Any, tuple[Any, Any, pd.DataFrame]] | None = None,
) -> dict[Path, TypedJsonFile]:
    """Each file's typed records (``result`` rows where ``ok``, in file and line order) and
    the rest of its lines read by Python."""
    from pipelines.ingest.readers import ParsedFile, read_json_line

    ok_f = result.column("__f").to_numpy()[ok]
    ok_rec = result.column("__rec").to_numpy()[ok]
    out: dict[Path, TypedJsonFile] = {}
    start = 0
    for f, (path, lines) in enumerate(files):
        stop = start + int((ok_f == f).sum())
        numbers = [int(n) for n in ok_rec[start:stop]]
        typed_set = set(numbers)
        parsed = ParsedFile(path)
        for number, line in enumerate(lines, start=1):
            if number not in typed_set:
                read_json_line(parsed, number, line.encode("utf-8"), cap, "")
        block = typed_all.iloc[start:stop].reset_index(drop=True)
        read = TypedJsonFile(parsed, numbers, [lines[n - 1] for n in numbers], block)
        for child, (counts, flags, typed_items) in (kids or {}).items():
            read.children[child.dataset] = _slice_children(
                counts, flags, typed_items, child, start, stop, lines, numbers
            )
        out[path] = read
        start = stop
    return out


def _json_query(
    con: duckdb.DuckDBPyConnection,
    table: pa.Table,
    where: _Paths,
    record_ok: list[str],
    values: str,
    canonical: list[str],
    select: list[str],
    cap: int,
    keep_values: bool = False,
) -> pa.Table:
    """The lines of ``table`` through the stages every JSON typed read shares: the text screen
    (:func:`_plain_json`), one parse per kind for the values, types and texts of ``where``'s
    paths and one for the keys, the record's shape (``record_ok``), its column values, then
    ``__ok`` and ``select``, in file and line order. ``keep_values``: ``select`` reads the
    paths' columns too.

    The stages are plain CTEs, each read once: DuckDB streams a line through them, each
    expression computed once in its stage. ``as materialized`` would copy every stage's rows,
    the line's text included, into a buffer first (measured slower on every source)."""
    kept = f"{where.names()}, " if keep_values else ""
    sql = f"""
        with plain as (
            select __f, __rec, line from _json_lines where {_plain_json(cap)}
        ), parsed as (
            select __f, __rec, line, json_keys(line) as __keys, {where.lists("line")}
            from plain
        ), values as (
            select __f, __rec, line, __keys, {where.unpacked()} from parsed
        ), unpacked as (
            select *, {where.described()} from values
        ), valued as (
            select __f, __rec, {kept}({" and ".join(record_ok)}) as __record_ok, {values}
            from unpacked
        ), checked as (
            select *, __record_ok and {" and ".join(canonical)} as __ok from valued
        )
        select __f, __rec, __ok, {", ".join(select)} from checked order by __f, __rec
    """
    con.register("_json_lines", table)
    try:
        return con.execute(sql).to_arrow_table()
    finally:
        con.unregister("_json_lines")


def typed_jsonls(
    con: duckdb.DuckDBPyConnection,
    paths: list[Path],
    contract: Contract,
    objects: tuple[str, ...],
    children: tuple[tuple[Any, Contract], ...],
    cap: int,
) -> dict[Path, TypedJsonFile]:
    """Read JSON-lines landing files: DuckDB parses the lines and casts the records (and their
    nested items) that need no judgement; Python reads the other lines. A file left out of the
    answer is read by :func:`~pipelines.ingest.readers.read_jsonl` (a byte-order mark,
    carriage returns, invalid UTF-8, no final newline).

    A record is cast in SQL when Python's parser would read it the same way and find no fault:
    valid JSON without escapes or the constants above, no key twice in any object, objects
    only where the feed nests them (``objects``, and the items of ``children``; counted: every
    ``{`` of the line must be one of them), and every contract value in its canonical form
    (:func:`json_column_sql`)."""
    files, table = _json_files(paths)
    if not files:
        return {}
    where = _Paths()
    columns, unique = _columns(contract, where, objects)
    # keys in the text (no escapes, no space before a colon: each '":' ends a key) against the
    # distinct keys of the objects DuckDB finds: equal only when no object repeats a key
    keys = ["len(list_distinct(__keys))"]
    braces = ["1"]
    shape = [_distinct("__keys")]
    for o in objects:
        value, kind = where.at(_path(o)), where.type(_path(o))
        shape.append(f"coalesce({kind} in ('OBJECT', 'NULL'), true)")
        braces.append(f"coalesce(({kind} = 'OBJECT')::int, 0)")
        keys.append(f"coalesce(len(list_distinct(json_keys({value}))), 0)")
    for child, _ in children:
        value, kind = where.at(_path(child.field)), where.type(_path(child.field))
        item_keys = f"json_keys({value}, '$[*]')"
        shape.append(
            f"coalesce({kind} = 'NULL' or ({kind} = 'ARRAY' and "
            f"coalesce(list_bool_and(list_transform(json_type({value}, '$[*]'), "
            f"t -> t = 'OBJECT')), true)), true)"
        )
        braces.append(f"coalesce(json_array_length({value}), 0)")
        keys.append(
            f"coalesce(list_sum(list_transform({item_keys}, k -> len(list_distinct(k)))), 0)"
        )
        key = where.type(_path(child.parent_key))
        shape.append(f"coalesce({key} in ('VARCHAR', 'NULL'), true)")
    values, casts, canonical = _stages(columns)
    casts = [f"case when __ok then {cast} end as __t{i}" for i, cast in enumerate(casts)]
    record_ok = [
        *shape,
        f"{_count('line', '{')} = " + " + ".join(braces),
        f"{_count('line', chr(34) + ':')} = " + " + ".join(keys),
        *unique,
    ]
    result = _json_query(con, table, where, record_ok, values, canonical, casts, cap)
    ok, typed_all = _typed_rows(result, contract, [c.name for c, _ in columns])
    con.register("_json_lines", table)
    try:
        ok_rows = result.filter(pa.array(ok))
        kids = {}
        if children and ok_rows.num_rows:
            con.register("_json_ok", ok_rows.select(["__f", "__rec"]))
            try:
                for child, child_contract in children:
                    kids[child] = _typed_items(con, child, child_contract)
            finally:
                con.unregister("_json_ok")
    finally:
        con.unregister("_json_lines")
    return _json_split(files, result, ok, typed_all, cap, kids)


def _typed_items(
    con: duckdb.DuckDBPyConnection, child: Any, contract: Contract
) -> tuple[Any, Any, pd.DataFrame]:
    """The nested items of the typed records (``_json_ok``), in order: how many each record
    holds, whether each item is canonical, and the canonical ones cast (with the record's
    key)."""
    import numpy as np

    where = _Paths()
    columns, unique = _columns(contract, where, (), skip=(child.parent_key,))
    values, casts, canonical = _stages(columns)
    casts = [
        f"case when __ok then {cast} end as {quote_identifier(column.name)}"
        for cast, (column, _) in zip(casts, columns, strict=True)
    ]
    # each record's key and items from one parse of its line, kept for both queries below
    picked = f"json_extract(line, ['{_path(child.parent_key)}', '{_path(child.field)}'])"
    con.execute(
        f"""create or replace temp table _json_items as
        select __f, __rec, nullif(__kv[1] ->> '$', '') as __key,
               coalesce(json_extract(__kv[2], '$[*]'), []) as __items
        from (select __f, __rec, {picked} as __kv
              from _json_ok join _json_lines using (__f, __rec))"""
    )
    sql = f"""
        with unnested as (
            select __f, __rec, __key, unnest(__items) as item,
                   unnest(range(len(__items))) as __i
            from _json_items
        ), parsed as (
            select __f, __rec, __i, __key, {where.lists("item")} from unnested
        ), values as (
            select __f, __rec, __i, __key, {where.unpacked()} from parsed
        ), unpacked as (
            select *, {where.described()} from values
        ), valued as (
            select __f, __rec, __i, __key, {" and ".join(unique) or "true"} as __unique, {values}
            from unpacked
        ), checked as (
            select *, __unique and {" and ".join(canonical) or "true"} as __ok from valued
        )
        select __ok, __key as {quote_identifier(child.parent_key)}, {", ".join(casts)}
        from checked order by __f, __rec, __i
    """
    try:
        counts = (
            con.execute("select len(__items) as n from _json_items order by __f, __rec")
            .to_arrow_table()
            .column("n")
            .to_numpy()
        )
        result = con.execute(sql).to_arrow_table()
    finally:
        con.execute("drop table if exists _json_items")
    ok = result.column("__ok").to_numpy(zero_copy_only=False).astype(bool)
    typed = typed_frame(result.filter(pa.array(ok)).drop_columns(["__ok"]), contract)
    return np.asarray(counts, dtype=np.int64), ok, typed


def _slice_children(
    counts,
    ok,
    typed: pd.DataFrame,
    child: Any,
    start: int,
    stop: int,
    lines: list[str],
    numbers: list[int],
) -> TypedChildren:
    """One file's share (typed records ``start:stop``) of the items of :func:`_typed_items`."""
    from pipelines.ingest.readers import flatten, parse_json_object

    first = int(counts[:start].sum())
    last = first + int(counts[start:stop].sum())
    typed_first = int(ok[:first].sum())
    flags = [bool(x) for x in ok[first:last]]
    block = typed.iloc[typed_first : typed_first + sum(flags)].reset_index(drop=True)
    rows = []
    position = 0
    for n, number in zip(counts[start:stop], numbers, strict=True):
        for index in range(int(n)):
            if not flags[position]:
                record = parse_json_object(lines[number - 1])
                row = flatten(record[child.field][index])
                row[child.parent_key] = record.get(child.parent_key)
                rows.append(row)
            position += 1
    return TypedChildren([int(n) for n in counts[start:stop]], flags, block, rows)


# ------------------------------------------------------------------------------ carrier feeds


def _text_cases(key: str, table: dict[str, Any]) -> str:
    """``case <key> when 'a' then 'A' ... end`` (NULL for other keys and NULL values)."""
    whens = " ".join(
        f"when {_sql_text(k)} then {'null' if v is None else _sql_text(v)}"
        for k, v in table.items()
    )
    return f"(case {key} {whens} end)" if whens else "null"


def _sql_text(value: Any) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def typed_parcel_webhooks(
    con: duckdb.DuckDBPyConnection,
    paths: list[Path],
    contract: Contract,
    carrier_id: str,
    codes: dict[str, list[Any]],
    mode: str,
    cap: int,
) -> dict[Path, TypedJsonFile]:
    """Parcel carriers' webhooks (``parcel_webhook_json``) read and normalised in DuckDB: the
    SQL form of :func:`pipelines.ingest.carriers._parcel` for the records it would normalise
    without a problem (the checkpoint and its location objects or absent, every other field a
    single value; tag, subtag and carrier text), with every value in its canonical form. The
    other lines are read, and normalised, by Python."""
    files, table = _json_files(paths)
    if not files:
        return {}
    where = _Paths()
    cp, loc = ("checkpoint",), ("checkpoint", "location")
    path = {
        "msg_id": _path("msg_id"),
        "carrier": _path("carrier"),
        "tracking_number": _path("tracking_number"),
        "checkpoint": _path(*cp),
        "tag": _path(*cp, "tag"),
        "subtag": _path(*cp, "subtag"),
        "checkpoint_time": _path(*cp, "checkpoint_time"),
        "message": _path(*cp, "message"),
        "location": _path(*loc),
        "city": _path(*loc, "city"),
        "country_iso2": _path(*loc, "country_iso2"),
        "lat": _path(*loc, "lat"),
        "lon": _path(*loc, "lon"),
    }
    v = {name: where.at(p) for name, p in path.items()}

    def jt(name: str) -> str:
        return where.type(path[name])

    def obj_keys(name: str) -> str:
        return f"(case when {jt(name)} = 'OBJECT' then len(list_distinct(json_keys({v[name]}))) else 0 end)"

    scalars = [k for k in v if k not in ("checkpoint", "location")]
    record_ok = [
        _distinct("__keys"),
        f"coalesce({jt('checkpoint')} in ('OBJECT', 'NULL'), true)",
        f"coalesce({jt('location')} in ('OBJECT', 'NULL'), true)",
        *(f"coalesce({jt(k)} not in ('OBJECT', 'ARRAY'), true)" for k in scalars),
        *(f"coalesce({jt(k)} in ('VARCHAR', 'NULL'), true)" for k in ("carrier", "tag", "subtag")),
        f"{_count('line', '{')} = 1 + coalesce(({jt('checkpoint')} = 'OBJECT')::int, 0) "
        f"+ coalesce(({jt('location')} = 'OBJECT')::int, 0)",
        f"{_count('line', chr(34) + ':')} = len(list_distinct(__keys)) + {obj_keys('checkpoint')} "
        f"+ {obj_keys('location')}",
    ]
    text = {k: f"nullif({where.text(path[k])}, '')" for k in ("carrier", "tag", "subtag")}
    code = {
        k: _text_cases(text[k], {c: pair[0] for c, pair in codes.items()})
        for k in ("subtag", "tag")
    }
    reason = {
        k: _text_cases(text[k], {c: pair[1] for c, pair in codes.items()})
        for k in ("subtag", "tag")
    }
    known = {
        k: f"coalesce({text[k]} in ({', '.join(_sql_text(c) for c in codes) or 'null'}), false)"
        for k in ("subtag", "tag")
    }
    derived = {  # the columns the normaliser computes, as SQL text (or boolean)
        "carrier_id": f"coalesce({text['carrier']}, {_sql_text(carrier_id)})",
        "feed_format": "'parcel_webhook_json'",
        "event_code": f"case when {known['subtag']} then {code['subtag']} "
        f"when {known['tag']} then {code['tag']} else 'UNKNOWN' end",
        "exception_reason": f"case when {known['subtag']} then {reason['subtag']} "
        f"when {known['tag']} then {reason['tag']} end",
        "event_classifier": "'ACT'",
        "carrier_status_code": f"coalesce({text['subtag']}, {text['tag']})",
        "is_unmapped": f"not ({known['subtag']} or {known['tag']})",
        "mode": _sql_text(mode),
    }
    sourced = {  # the columns taken from the feed as they are: checked like any JSON value
        column: (v[name], jt(name), where.text(path[name]))
        for column, name in (
            ("event_id", "msg_id"),
            ("tracking_ref", "tracking_number"),
            ("event_ts", "checkpoint_time"),
            ("carrier_status_text", "message"),
            ("location_name", "city"),
            ("location_country", "country_iso2"),
            ("location_lat", "lat"),
            ("location_lon", "lon"),
        )
    }
    if set(derived) | set(sourced) != set(contract.column_names):
        return {}  # the contract changed: Python normalises until this follows
    json_columns = [(c, sourced[c.name]) for c in contract.columns if c.name in sourced]
    values, casts, canonical = _stages(json_columns)
    cast_of = {c.name: cast for (c, _), cast in zip(json_columns, casts, strict=True)}
    select = []
    for i, column in enumerate(contract.columns):
        expr = cast_of.get(column.name) or derived[column.name]
        select.append(f"case when __ok then {expr} end as __t{i}")
    result = _json_query(
        con, table, where, record_ok, values, canonical, select, cap, keep_values=True
    )
    ok, typed_all = _typed_rows(result, contract, list(contract.column_names))
    return _json_split(files, result, ok, typed_all, cap)


_RAIL_TIME = r"[0-9]{2}\.[0-9]{2}\.[0-9]{4} [0-9]{2}:[0-9]{2}"


def typed_rail(
    con: duckdb.DuckDBPyConnection,
    paths: list[Path],
    contract: Contract,
    carrier_id: str,
    columns: tuple[str, ...],
    spec: dict[str, Any],
    codes: dict[str, list[Any]],
    mode: str,
    cap: int,
) -> dict[Path, TypedFile]:
    """Rail operators' files (``rail_csv``) read and normalised in DuckDB: the SQL form of
    :func:`pipelines.ingest.carriers._rail` for the rows it normalises without judgement (a
    ``DD.MM.YYYY HH:MM`` local time, an ASCII station code, no remark to read on an
    exception). The station-local time becomes UTC with the offset Python's ``zoneinfo`` gives
    for that hour (asked once per zone and hour of the batch, and only where the offset holds
    all hour). Other rows come back as text; the caller normalises them in Python."""
    from datetime import timedelta
    from zoneinfo import ZoneInfo

    groups: dict[tuple[str, ...], list[tuple[Path, list[str]]]] = {}
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError:
            continue
        header = _screened_header(data, columns, ";", cap)
        if header is not None:
            groups.setdefault(tuple(header), []).append(
                (path, data.decode("utf-8").split("\n")[1:-1])
            )
    zones = spec.get("station_timezones") or {}
    default_zone = spec["default_timezone"]
    zone_sql = _text_cases("upper(left(station_code, 2))", zones)
    known = (
        f"coalesce(nullif(status_code, '') in ({', '.join(_sql_text(c) for c in codes)}), false)"
    )
    out: dict[Path, TypedFile] = {}
    for header, files in groups.items():
        spec_sql = (
            "{" + ", ".join(f"'{h.replace(chr(39), chr(39) * 2)}': 'VARCHAR'" for h in header) + "}"
        )
        names = ", ".join(quote_identifier(c) for c in columns)
        read = (
            f"read_csv(?, columns={spec_sql}, header=true, auto_detect=false, delim=';', "
            f"quote='', escape='', strict_mode=true, null_padding=false, filename='__file', "
            f"max_line_size={max(cap + 16, 2_097_152)})"
        )
        try:
            text = con.execute(
                f"""select __file, {names},
                       coalesce({zone_sql}, {_sql_text(default_zone)}) as __zone,
                       case when regexp_full_match(local_time, '{_RAIL_TIME}')
                            and substr(local_time, 7, 4) between '{_YEARS[0]}' and '{_YEARS[1]}'
                            then try_strptime(local_time, '%d.%m.%Y %H:%M') end as __naive
                   from {read}""",
                [[str(p) for p, _ in files]],
            ).to_arrow_table()
        except duckdb.Error:
            continue
        if text.num_rows != sum(len(lines) for _, lines in files):
            continue
        text = text.append_column("__row", pa.array(range(text.num_rows), type=pa.int64()))
        # Python's offset of each zone and local hour, where it holds the whole hour
        con.register("_rail_text", text)
        try:
            hours = con.execute(
                "select distinct __zone, date_trunc('hour', __naive) from _rail_text "
                "where __naive is not null"
            ).fetchall()
        finally:
            con.unregister("_rail_text")
        offsets = []
        for zone, hour in hours:
            tz = ZoneInfo(zone)
            first = hour.replace(tzinfo=tz).utcoffset()
            last = (hour + timedelta(minutes=59)).replace(tzinfo=tz).utcoffset()
            if first == last:
                offsets.append((zone, hour, int(first.total_seconds())))
        offset_table = pa.table(
            {
                "__zone": pa.array([o[0] for o in offsets], pa.string()),
                "__hour": pa.array([o[1] for o in offsets], pa.timestamp("us")),
                "__offset": pa.array([o[2] for o in offsets], pa.int64()),
            }
        )
        key = " || '|' || ".join(
            f"coalesce({quote_identifier(c)}, '')"
            for c in ("consignment_no", "status_code", "station_code", "local_time")
        )
        event = {
            "event_id": f"{_sql_text(carrier_id + '-')} || left(sha1({key}), 20)",
            "carrier_id": _sql_text(carrier_id),
            "feed_format": "'rail_csv'",
            "tracking_ref": "consignment_no",
            "event_ts": "timezone('UTC', __naive - to_seconds(__offset))",
            "event_code": f"case when {known} then "
            + _text_cases("status_code", {c: p[0] for c, p in codes.items()})
            + " else 'UNKNOWN' end",
            "exception_reason": _text_cases("status_code", {c: p[1] for c, p in codes.items()}),
            "event_classifier": "'ACT'",
            "carrier_status_code": "status_code",
            "carrier_status_text": "remarks",
            "is_unmapped": f"not {known}",
            "mode": _sql_text(mode),
            "location_name": "station_name",
            "location_country": "case when length(station_code) >= 2 then upper(left(station_code, 2)) end",
            "location_lat": "null::double",
            "location_lon": "null::double",
        }
        if set(event) != set(contract.column_names):
            return {}
        ok = " and ".join(
            [
                "(local_time is null or __offset is not null)",
                "(station_code is null or regexp_full_match(station_code, '[ -~]*'))",
                f"not ({known} and {_text_cases('status_code', {c: p[0] for c, p in codes.items()})}"
                " = 'EXCEPTION' and remarks is not null)",
            ]
        )
        casts = []
        for i, column in enumerate(contract.columns):
            expr = event[column.name]
            casts.append(f"case when __ok then {expr} end as __t{i}")
        con.register("_rail_text", text)
        con.register("_rail_offsets", offset_table)
        try:
            result = con.execute(
                f"""with joined as (
                        select t.*, o.__offset
                        from _rail_text t left join _rail_offsets o
                          on o.__zone = t.__zone and o.__hour = date_trunc('hour', t.__naive)
                    ), checked as (select *, {ok} as __ok from joined)
                    select __file, __ok, {names}, {", ".join(casts)} from checked order by __row"""
            ).to_arrow_table()
        finally:
            con.unregister("_rail_text")
            con.unregister("_rail_offsets")
        flags, typed_all = _typed_rows(result, contract, list(contract.column_names))
        out.update(_split_delimited(files, result, flags, typed_all, columns, list(header)) or {})
    return out
