"""Contract rules as set-based DuckDB checks: every rule of a batch in one SQL query.

The contract stays the one source of every rule (:func:`~pipelines.contracts.expectations.
compile_rules` turns it into Great Expectations expectations). This module runs those same
expectations as SQL over the whole batch instead of through Great Expectations' pandas engine,
which spends most of an ingestion run building metric graphs. It follows Great Expectations'
semantics exactly, rule by rule:

* map expectations (in set, between, regex, lengths) skip null values, and ``mostly`` is the
  share of the non-null values (the filtered rows for column pairs) that must pass;
* uniqueness flags every value seen before (the first occurrence is kept), nulls never;
  compound keys ignore rows whose every key column is null;
* a column pair compares ``A > B`` (or ``>=``); rows ``ignore_row_if`` names are skipped, and a
  row with one side missing fails unless it is ignored;
* a regex is searched, not matched whole, as ``str.contains`` does.

Where SQL and Python could disagree, Python decides: a regex or a length is checked in SQL only
on values of printable ASCII (RE2 and Python's ``re`` differ on Unicode classes, ``$`` before a
final newline and control characters); other values are checked with Python's ``re`` and
``len``, as Great Expectations does. A pattern RE2 does not compile, a rule on a column of
another type, a custom expectation this module does not know: such rules are returned to the
caller, which runs them in Great Expectations. ``tests/test_contract_engines.py`` checks that
both engines reject the same records with the same reasons.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from ordertower.lake import quote_identifier
from pipelines.contracts.model import Column, Contract

#: the position of each record in the batch (the index Great Expectations reports)
POS = "__pos"
#: values of printable ASCII only: where RE2 and Python's ``re`` agree on every pattern
_PLAIN_TEXT = "[ -~]*"
_NUMERIC = ("integer", "number")


@dataclass
class Outcome:
    """A rule's result: pass or fail, and the records it flags (positions in the batch)."""

    success: bool
    index: list[int] = field(default_factory=list)
    count: int = 0


def _text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _literal(value: Any) -> str | None:
    """A bound as a SQL literal, or None when it has no exact one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, pd.Timestamp):
        if value.tzinfo is None:
            return None
        return f"TIMESTAMPTZ {_text(value.tz_convert('UTC').isoformat())}"
    if isinstance(value, dt.datetime):
        return None
    if isinstance(value, dt.date):
        return f"DATE {_text(value.isoformat())}"
    if isinstance(value, int):
        return f"{value}::DOUBLE"
    if isinstance(value, float) and math.isfinite(value):
        return f"{value!r}::DOUBLE"
    return None


def _arrow_type(column: Column | None) -> pa.DataType | None:
    if column is None:
        return None
    return {
        "integer": pa.float64(),  # as Great Expectations sees it (Int64 -> float64)
        "number": pa.float64(),
        "timestamp": pa.timestamp("ns", tz="UTC"),
        "date": pa.date32(),
        "boolean": pa.bool_(),
        "array": pa.list_(pa.string()),
        "string": pa.string(),
    }.get(column.logical_type, pa.string())


def _to_arrow(data: pd.DataFrame, contract: Contract) -> tuple[pa.Table, set[str]]:
    """``data`` as an Arrow table with a position column, and the columns it could not take
    (e.g. text with a lone surrogate, which Arrow cannot encode): their rules go elsewhere."""
    arrays, names, unusable = [pa.array(range(len(data)), type=pa.int64())], [POS], set()
    known = {c.name: c for c in contract.columns}
    for name in data.columns:
        column = known.get(name)
        series = data[name]
        try:
            if column is not None and column.logical_type == "array":
                values = [list(v) if isinstance(v, tuple | list) else None for v in series]
                array = pa.array(values, type=_arrow_type(column))
            else:
                array = pa.array(series, type=_arrow_type(column), from_pandas=True)
        except (pa.ArrowException, UnicodeError, TypeError, ValueError, OverflowError):
            unusable.add(name)
            continue
        arrays.append(array)
        names.append(name)
    return pa.Table.from_arrays(arrays, names=names), unusable


@dataclass
class _Check:
    """One rule as SQL: which records fail, how many count for ``mostly``, what Python checks."""

    rule: Any
    fails: str  # true for a record the rule flags
    considered: str = "true"  # the rows ``mostly`` divides by
    unexpected: str | None = None  # counted for success when not ``fails`` (uniqueness)
    #: columns the conditions read, computed beside the batch's (window functions, flags);
    #: checks that share one name share its value
    windows: list[str] = field(default_factory=list)
    #: records SQL leaves to Python (values outside printable ASCII) and the test they get
    python_rows: str | None = None
    python_test: Any = None


def _pattern_compiles(con: duckdb.DuckDBPyConnection, pattern: str) -> bool:
    if "(?" in pattern.replace("(?:", "") or "[:" in pattern or "{," in pattern:
        return False  # Python and RE2 read these differently (or RE2 lacks them)
    try:
        re.compile(pattern)
        con.execute("select regexp_matches('', ?)", [pattern]).fetchone()
    except (re.error, duckdb.Error):
        return False
    return True


def _check(
    rule: Any, i: int, contract: Contract, columns: set[str], con: duckdb.DuckDBPyConnection
) -> _Check | None:
    """The rule as SQL, or None when this module cannot promise Great Expectations' result."""
    kw, kind = rule.kwargs, rule.expectation
    by_name = {c.name: c for c in contract.columns}

    def usable(*names: str) -> bool:
        return all(isinstance(n, str) and n in columns for n in names)

    if not rule.row_level:
        return _Check(rule, "false") if kind == "expect_table_row_count_to_be_between" else None
    column = kw.get("column")
    c = by_name.get(column) if isinstance(column, str) else None
    col = quote_identifier(column) if isinstance(column, str) else ""
    # whether the value is printable ASCII: one column per checked column, computed once for
    # every rule on it (each text rule asks twice: which records fail, which go to Python)
    plain = f"__plain{list(by_name).index(column)}" if c is not None else "false"
    plain_column = [f"regexp_full_match({col}, '{_PLAIN_TEXT}') as {plain}"] if c else []
    if kind == "expect_column_values_to_not_be_null" and usable(column):
        return _Check(rule, f"{col} is null")
    if kind == "expect_column_values_to_be_in_set" and usable(column) and c is not None:
        values = list(kw.get("value_set") or [])
        if c.logical_type == "string" and all(isinstance(v, str) for v in values):
            listed = "[" + ", ".join(_text(v) for v in values) + "]::VARCHAR[]"
        elif c.logical_type in _NUMERIC and all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
            for v in values
        ):
            listed = "[" + ", ".join(f"{float(v)!r}" for v in values) + "]::DOUBLE[]"
        elif c.logical_type == "boolean" and all(isinstance(v, bool) for v in values):
            listed = "[" + ", ".join(str(v).lower() for v in values) + "]::BOOLEAN[]"
        else:
            return None
        if not values:
            listed = listed.replace("[]", "[NULL]", 1)  # an empty list has no element type
        return _Check(
            rule, f"{col} is not null and not list_contains({listed}, {col})", f"{col} is not null"
        )
    if kind == "expect_column_values_to_be_between" and usable(column) and c is not None:
        if c.logical_type not in (*_NUMERIC, "timestamp", "date"):
            return None
        low, high = kw.get("min_value"), kw.get("max_value")
        if low is None and high is None:
            return None
        parts = []
        for bound, strict, ops in (
            (low, kw.get("strict_min"), (">", ">=")),
            (high, kw.get("strict_max"), ("<", "<=")),
        ):
            if bound is None:
                continue
            literal = _literal(bound)
            if literal is None:
                return None
            parts.append(f"{col} {ops[0] if strict else ops[1]} {literal}")
        return _Check(
            rule, f"{col} is not null and not ({' and '.join(parts)})", f"{col} is not null"
        )
    if kind == "expect_column_values_to_match_regex" and usable(column) and c is not None:
        pattern = kw.get("regex")
        if c.logical_type != "string" or not isinstance(pattern, str):
            return None
        if not _pattern_compiles(con, pattern):
            return None
        compiled = re.compile(pattern)
        return _Check(
            rule,
            f"{col} is not null and {plain} and not regexp_matches({col}, {_text(pattern)})",
            f"{col} is not null",
            windows=plain_column,
            python_rows=f"{col} is not null and not {plain}",
            python_test=lambda v, rx=compiled: rx.search(v) is None,
        )
    if kind == "expect_column_value_lengths_to_be_between" and usable(column) and c is not None:
        low, high = kw.get("min_value"), kw.get("max_value")
        if c.logical_type != "string" or (low is None and high is None):
            return None
        bounds = [f"length({col}) >= {int(low)}"] if low is not None else []
        bounds += [f"length({col}) <= {int(high)}"] if high is not None else []

        def outside(v: str, lo=low, hi=high) -> bool:
            return (lo is not None and len(v) < lo) or (hi is not None and len(v) > hi)

        return _Check(
            rule,
            f"{col} is not null and {plain} and not ({' and '.join(bounds)})",
            f"{col} is not null",
            windows=plain_column,
            python_rows=f"{col} is not null and not {plain}",
            python_test=outside,
        )
    if kind == "expect_column_values_to_be_unique" and usable(column):
        if c is not None and c.logical_type == "array":
            return None
        rn, cnt = f"__rn{i}", f"__cnt{i}"
        return _Check(
            rule,
            f"{col} is not null and {rn} > 1",
            f"{col} is not null",
            unexpected=f"{col} is not null and {cnt} > 1",
            windows=[
                f"row_number() over (partition by {col} order by {POS}) as {rn}",
                f"count(*) over (partition by {col}) as {cnt}",
            ],
        )
    if kind == "expect_compound_columns_to_be_unique":
        names = list(kw.get("column_list") or [])
        if (
            not names
            or not usable(*names)
            or kw.get("ignore_row_if", "all_values_are_missing") != ("all_values_are_missing")
        ):
            return None
        if any(by_name.get(n) is not None and by_name[n].logical_type == "array" for n in names):
            return None
        cols = ", ".join(quote_identifier(n) for n in names)
        considered = "not (" + " and ".join(f"{quote_identifier(n)} is null" for n in names) + ")"
        rn, cnt = f"__rn{i}", f"__cnt{i}"
        return _Check(
            rule,
            f"{considered} and {rn} > 1",
            considered,
            unexpected=f"{considered} and {cnt} > 1",
            windows=[
                f"row_number() over (partition by {cols} order by {POS}) as {rn}",
                f"count(*) over (partition by {cols}) as {cnt}",
            ],
        )
    if kind == "expect_column_pair_values_a_to_be_greater_than_b":
        a, b = kw.get("column_A"), kw.get("column_B")
        if not usable(a, b):
            return None
        ignore = kw.get("ignore_row_if", "both_values_are_missing")
        qa, qb = quote_identifier(a), quote_identifier(b)
        considered = {
            "both_values_are_missing": f"not ({qa} is null and {qb} is null)",
            "either_value_is_missing": f"{qa} is not null and {qb} is not null",
            "neither": "true",
        }.get(ignore)
        if considered is None:
            return None
        op = ">=" if kw.get("or_equal") else ">"
        return _Check(rule, f"{considered} and not coalesce({qa} {op} {qb}, false)", considered)
    return None


def _success(rule: Any, unexpected: int, considered: int, rows: int) -> bool:
    if rule.expectation == "expect_table_row_count_to_be_between":
        low, high = rule.kwargs.get("min_value"), rule.kwargs.get("max_value")
        return (low is None or rows >= low) and (high is None or rows <= high)
    mostly = rule.kwargs.get("mostly")
    if rule.expectation == "expect_column_values_to_not_be_null":
        considered = rows
    if mostly is None:
        return unexpected == 0
    if considered == 0:
        return True
    return (considered - unexpected) / considered >= float(mostly)


def sql_outcomes(
    data: pd.DataFrame, contract: Contract, rules: list[Any]
) -> tuple[dict[str, Outcome], list[Any]]:
    """Run every rule SQL can run on ``data`` (the frame Great Expectations would get).

    Returns each rule's :class:`Outcome` by name, and the rules left for Great Expectations.
    """
    from ordertower.lake import NO_AUTO_EXTENSIONS

    table, unusable = _to_arrow(data, contract)
    columns = set(table.column_names) - {POS}
    con = duckdb.connect(config={**NO_AUTO_EXTENSIONS, "threads": 1})
    try:
        checks: list[_Check] = []
        rest: list[Any] = []
        for i, rule in enumerate(rules):
            check = _check(rule, i, contract, columns - unusable, con)
            (checks.append if check is not None else rest.append)(check or rule)
        if not checks:
            return {}, rest
        con.register("batch", table)
        # the columns the checks share are computed once (the same expression under one name)
        windows = list(dict.fromkeys(w for ch in checks for w in ch.windows))
        select = ["count(*)"]
        for ch in checks:
            select.append(f"coalesce(list({POS} order by {POS}) filter (where {ch.fails}), [])")
            select.append(f"count(*) filter (where {ch.considered})")
            if ch.unexpected:  # otherwise the records that fail, counted from their list
                select.append(f"count(*) filter (where {ch.unexpected})")
            if ch.python_rows:
                select.append(
                    f"coalesce(list({POS} order by {POS}) filter (where {ch.python_rows}), [])"
                )
        source = f"(select *, {', '.join(windows)} from batch)" if windows else "batch"
        row = con.execute(f"select {', '.join(select)} from {source}").fetchone()
    finally:
        con.close()
    rows, values = int(row[0]), list(row[1:])
    outcomes: dict[str, Outcome] = {}
    for ch in checks:
        index, considered = values.pop(0), values.pop(0)
        unexpected = values.pop(0) if ch.unexpected else len(index)
        if ch.python_rows:
            column = data[ch.rule.kwargs["column"]]
            extra = [int(p) for p in values.pop(0) if ch.python_test(column.iat[p])]
            index = sorted([*index, *extra])
            unexpected += len(extra)
        if not ch.rule.row_level:
            index, unexpected = [], 0
        success = _success(ch.rule, unexpected, considered, rows)
        outcomes[ch.rule.name] = Outcome(success, [int(p) for p in index], len(index))
    return outcomes, rest
