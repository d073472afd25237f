"""Compile a contract's rules into Great Expectations expectations and run them on a DataFrame.

Every rule comes from the contract: ``required`` -> not null, ``unique``/``primaryKey`` ->
unique (compound keys as a compound rule), ``enum`` -> in set, ``logicalTypeOptions``
(minimum/maximum, pattern, min/maxLength) -> between / regex / length, and ``quality`` entries
(ODCS library metrics, or ``type: custom`` with ``engine: great-expectations`` to use any GX
expectation). Nothing here names a dataset or a column.

Two engines run the rules: DuckDB, set-based SQL over the whole batch (the default,
``pipelines/contracts/sql_checks.py``), and Great Expectations' pandas engine, the reference
(Great Expectations over DuckDB through SQLAlchemy fails upstream, see docs/dependencies.md).
Both return the index of every failing record, which becomes that record's quarantine reason,
and the same per-rule results. Rules with ``severity: warning`` are reported but never
quarantine a record.
"""

from __future__ import annotations

import os
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import pandas as pd

from pipelines.contracts.coerce import reason_value
from pipelines.contracts.model import Column, Contract, ContractError
from pipelines.contracts.sql_checks import Outcome, sql_outcomes

ERROR, WARNING = "error", "warning"


@dataclass(frozen=True)
class Rule:
    """One contract rule, ready for Great Expectations."""

    name: str  # stable, human-readable id, e.g. "order_id.required"
    column: str | None
    expectation: str  # GX expectation type, snake case
    kwargs: dict[str, Any]
    message: str  # reason text for a failing record, after "<column>: <value> "
    severity: str = ERROR
    row_level: bool = True
    #: evaluated by the platform in pandas with the expectation's semantics instead of by GX
    #: (a column-pair comparison GX computes many times slower); lint still builds it in GX
    native: bool = False


@dataclass
class RuleResult:
    rule: Rule
    success: bool
    unexpected_count: int
    evaluated_rows: int
    unexpected_index: list[int] = field(default_factory=list)


@dataclass
class Validation:
    results: list[RuleResult]
    reasons: dict[int, list[str]]

    @property
    def failed_rules(self) -> list[RuleResult]:
        return [r for r in self.results if not r.success]


def _camel(snake: str) -> str:
    return "".join(part.capitalize() for part in snake.split("_"))


def _bounds(column: Column) -> tuple[Any, Any, bool, bool]:
    low, high, strict_low, strict_high = column.minimum, column.maximum, False, False
    if column.exclusive_minimum is not None:
        low, strict_low = column.exclusive_minimum, True
    if column.exclusive_maximum is not None:
        high, strict_high = column.exclusive_maximum, True
    if column.logical_type == "timestamp":
        low = (
            pd.Timestamp(low).tz_convert("UTC")
            if low is not None and pd.Timestamp(low).tzinfo
            else (pd.Timestamp(low, tz="UTC") if low is not None else None)
        )
        high = (
            pd.Timestamp(high).tz_convert("UTC")
            if high is not None and pd.Timestamp(high).tzinfo
            else (pd.Timestamp(high, tz="UTC") if high is not None else None)
        )
    elif column.logical_type == "date":
        low = pd.Timestamp(low).date() if low is not None else None
        high = pd.Timestamp(high).date() if high is not None else None
    return low, high, strict_low, strict_high


def _column_rules(column: Column) -> list[Rule]:
    c = column.name
    rules: list[Rule] = []
    if column.required:
        rules.append(
            Rule(
                f"{c}.required",
                c,
                "expect_column_values_to_not_be_null",
                {"column": c},
                "required value is missing",
            )
        )
    if column.enum is not None:
        shown = ", ".join(map(str, column.enum[:8])) + (", ..." if len(column.enum) > 8 else "")
        rules.append(
            Rule(
                f"{c}.enum",
                c,
                "expect_column_values_to_be_in_set",
                {"column": c, "value_set": list(column.enum)},
                f"is not one of {shown}",
            )
        )
    low, high, strict_low, strict_high = _bounds(column)
    if low is not None or high is not None:
        if low is not None and high is not None:
            msg = f"is outside {'(' if strict_low else '['}{column.minimum if column.exclusive_minimum is None else column.exclusive_minimum}, {column.maximum if column.exclusive_maximum is None else column.exclusive_maximum}{')' if strict_high else ']'}"
        elif low is not None:
            msg = f"is below the minimum {column.minimum if column.exclusive_minimum is None else column.exclusive_minimum}"
        else:
            msg = f"is above the maximum {column.maximum if column.exclusive_maximum is None else column.exclusive_maximum}"
        rules.append(
            Rule(
                f"{c}.range",
                c,
                "expect_column_values_to_be_between",
                {
                    "column": c,
                    "min_value": low,
                    "max_value": high,
                    "strict_min": strict_low,
                    "strict_max": strict_high,
                },
                msg,
            )
        )
    if column.pattern:
        rules.append(
            Rule(
                f"{c}.pattern",
                c,
                "expect_column_values_to_match_regex",
                {"column": c, "regex": column.pattern},
                f"does not match the pattern {column.pattern}",
            )
        )
    if column.min_length is not None or column.max_length is not None:
        rules.append(
            Rule(
                f"{c}.length",
                c,
                "expect_column_value_lengths_to_be_between",
                {"column": c, "min_value": column.min_length, "max_value": column.max_length},
                f"has a length outside [{column.min_length}, {column.max_length}]",
            )
        )
    rules.extend(_receipt_rules(column))
    for i, q in enumerate(column.quality):
        rules.append(_quality_rule(q, c, f"{c}.quality{i + 1}"))
    return rules


def _span(hours: float) -> str:
    if hours >= 48 and hours % 24 == 0:
        return f"{int(hours // 24)} days"
    if hours >= 1 and float(hours).is_integer():
        return f"{int(hours)} h"
    return f"{round(hours * 60)} min"


def latest_column(column: str) -> str:
    """The derived column a receipt window compares ``column`` with (never stored)."""
    return f"_receipt_latest__{column}"


def earliest_column(column: str) -> str:
    return f"_receipt_earliest__{column}"


def _receipt_rules(column: Column) -> list[Rule]:
    """A ``receiptWindow`` as two row-level rules against bounds derived from each record's
    receipt time (:func:`receipt_bounds`): Great Expectations compares the two columns."""
    window, c = column.receipt_window, column.name
    if window is None:
        return []
    rules = []
    if window.not_after_hours is not None or window.forecast_not_after_hours is not None:
        after = (
            f"is more than {_span(window.not_after_hours)} after its receipt "
            "(a clock ahead or a date in the future)"
            if window.not_after_hours is not None
            else "is too far after its receipt"
        )
        if window.forecast_column and window.forecast_not_after_hours is not None:
            after += (
                f"; a forecast ({window.forecast_column} "
                f"{'/'.join(map(str, window.forecast_values))}) may be "
                f"{_span(window.forecast_not_after_hours)} ahead"
            )
        rules.append(
            Rule(
                f"{c}.not_after_receipt",
                c,
                "expect_column_pair_values_a_to_be_greater_than_b",
                {
                    "column_A": latest_column(c),
                    "column_B": c,
                    "or_equal": True,
                    "ignore_row_if": "either_value_is_missing",
                },
                after,
                native=True,
            )
        )
    if window.not_before_hours is not None:
        rules.append(
            Rule(
                f"{c}.not_before_receipt",
                c,
                "expect_column_pair_values_a_to_be_greater_than_b",
                {
                    "column_A": c,
                    "column_B": earliest_column(c),
                    "or_equal": True,
                    "ignore_row_if": "either_value_is_missing",
                },
                f"is more than {_span(window.not_before_hours)} before its receipt",
                native=True,
            )
        )
    return rules


def receipt_bounds(
    frame: pd.DataFrame, contract: Contract, received_at: pd.Series | pd.Timestamp | None = None
) -> dict[str, pd.Series]:
    """The derived bound columns of every ``receiptWindow`` (positional, like ``frame``).

    ``received_at`` is each record's receipt (a Series in ``frame``'s order) or one time for
    all; without it, now.
    """
    columns = [c for c in contract.columns if c.receipt_window is not None]
    if not columns:
        return {}
    n = len(frame)
    if received_at is None:
        received_at = pd.Timestamp.now(tz="UTC")
    if isinstance(received_at, pd.Series):
        receipt = pd.to_datetime(received_at.reset_index(drop=True), utc=True)
    else:
        # one value converted, then repeated (a list of n timestamps converts each of them)
        one = pd.Series([pd.Timestamp(received_at)], dtype="datetime64[ns, UTC]")
        receipt = one.repeat(n).reset_index(drop=True)
    nat = pd.Series(pd.NaT, index=receipt.index, dtype="datetime64[ns, UTC]")
    out: dict[str, pd.Series] = {}
    for column in columns:
        w = column.receipt_window
        latest = (
            receipt + pd.Timedelta(hours=w.not_after_hours)
            if w.not_after_hours is not None
            else nat
        )
        if w.forecast_column and w.forecast_column in frame.columns:
            forecast = frame[w.forecast_column].reset_index(drop=True).isin(w.forecast_values)
            ahead = (
                receipt + pd.Timedelta(hours=w.forecast_not_after_hours)
                if w.forecast_not_after_hours is not None
                else nat
            )
            latest = latest.where(~forecast, ahead)
        out[latest_column(column.name)] = latest
        if w.not_before_hours is not None:
            out[earliest_column(column.name)] = receipt - pd.Timedelta(hours=w.not_before_hours)
    return out


def is_warning(quality: dict[str, Any]) -> bool:
    """An ODCS quality entry that reports without quarantining (severity warning or info)."""
    return str(quality.get("severity", "error")).lower() in ("warning", "warn", "info")


def _quality_rule(q: dict[str, Any], column: str | None, default_name: str) -> Rule:
    """An ODCS ``quality`` entry (library metric or a custom GX expectation) as a rule."""
    severity = WARNING if is_warning(q) else ERROR
    name = q.get("name") or default_name
    kind = q.get("type", "library")
    message = q.get("description") or name
    if kind == "custom":
        if str(q.get("engine", "")).replace("_", "-").lower() not in (
            "great-expectations",
            "greatexpectations",
            "gx",
        ):
            raise ContractError(
                f"{name}: only engine great-expectations is supported for custom rules"
            )
        impl = q.get("implementation") or {}
        if not isinstance(impl, dict) or "type" not in impl:
            raise ContractError(
                f"{name}: implementation must be {{type: <expectation>, kwargs: {{...}}}}"
            )
        kwargs = dict(impl.get("kwargs") or {})
        if (
            column
            and "column" not in kwargs
            and "column_A" not in kwargs
            and "column_list" not in kwargs
        ):
            kwargs["column"] = column
        row_level = not impl["type"].startswith(
            (
                "expect_table_",
                "expect_column_mean",
                "expect_column_max",
                "expect_column_min",
                "expect_column_sum",
            )
        )
        return Rule(name, column, impl["type"], kwargs, message, severity, row_level)
    metric = q.get("metric") or q.get("rule")
    args = q.get("arguments") or {}
    if metric == "rowCount":
        low, high = _operator_bounds(q)
        return Rule(
            name,
            None,
            "expect_table_row_count_to_be_between",
            {"min_value": low, "max_value": high},
            message,
            severity,
            row_level=False,
        )
    if column is None:
        raise ContractError(f"{name}: metric {metric!r} needs a column (put it under a property)")
    if metric in ("nullValues", "missingValues"):
        return Rule(
            name,
            column,
            "expect_column_values_to_not_be_null",
            {"column": column},
            q.get("description") or "required value is missing",
            severity,
        )
    if metric == "duplicateValues":
        return Rule(
            name,
            column,
            "expect_column_values_to_be_unique",
            {"column": column},
            q.get("description") or "is a duplicate",
            severity,
        )
    if metric == "invalidValues":
        if "validValues" in args:
            return Rule(
                name,
                column,
                "expect_column_values_to_be_in_set",
                {"column": column, "value_set": list(args["validValues"])},
                q.get("description") or "is not a valid value",
                severity,
            )
        if "pattern" in args:
            return Rule(
                name,
                column,
                "expect_column_values_to_match_regex",
                {"column": column, "regex": args["pattern"]},
                q.get("description") or f"does not match {args['pattern']}",
                severity,
            )
    raise ContractError(f"{name}: unsupported quality metric {metric!r}")


def _operator_bounds(q: dict[str, Any]) -> tuple[Any, Any]:
    if "mustBe" in q:
        return q["mustBe"], q["mustBe"]
    if "mustBeBetween" in q:
        low, high = q["mustBeBetween"]
        return low, high
    low = q.get("mustBeGreaterOrEqualTo", q.get("mustBeGreaterThan"))
    if "mustBeGreaterThan" in q and low is not None:
        low = low + 1
    high = q.get("mustBeLessOrEqualTo", q.get("mustBeLessThan"))
    if "mustBeLessThan" in q and high is not None:
        high = high - 1
    return low, high


def compile_rules(contract: Contract) -> list[Rule]:
    """Every rule of the contract, in contract order."""
    rules: list[Rule] = []
    key = contract.primary_key
    for column in contract.columns:
        rules.extend(_column_rules(column))
        if (
            column.unique or (column.primary_key and len(key) == 1)
        ) and column.logical_type != "array":
            rules.append(
                Rule(
                    f"{column.name}.unique",
                    column.name,
                    "expect_column_values_to_be_unique",
                    {"column": column.name},
                    "is a duplicate key (first occurrence kept)",
                )
            )
    if len(key) > 1:
        rules.append(
            Rule(
                f"{'+'.join(key)}.unique",
                None,
                "expect_compound_columns_to_be_unique",
                {"column_list": list(key)},
                "duplicate key (first occurrence kept)",
            )
        )
    for i, q in enumerate(contract.quality):
        rules.append(_quality_rule(q, q.get("column"), f"{contract.name}.quality{i + 1}"))
    return rules


@lru_cache(maxsize=1)
def _gx():
    """Import Great Expectations lazily (about 7 s) with analytics and progress bars off."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return gx, context


def build_expectation(rule: Rule):
    """The Great Expectations expectation object of a rule (raises if GX rejects it)."""
    gx, _ = _gx()
    cls = getattr(gx.expectations, _camel(rule.expectation), None)
    if cls is None:
        raise ContractError(
            f"{rule.name}: Great Expectations has no expectation {rule.expectation!r}"
        )
    kwargs = {
        k: v for k, v in rule.kwargs.items() if v is not None or k in ("min_value", "max_value")
    }
    return cls(**kwargs, meta={"rule": rule.name})


def _gx_frame(frame: pd.DataFrame, contract: Contract) -> pd.DataFrame:
    """GX's pandas engine needs plain dtypes and a 0..n-1 index."""
    out = frame.reset_index(drop=True).copy()
    arrays = {c.name for c in contract.columns if c.logical_type == "array"}
    for name in out.columns:
        dtype = out[name].dtype
        if isinstance(dtype, pd.BooleanDtype):
            out[name] = out[name].astype(object).where(out[name].notna(), None)
        elif isinstance(dtype, pd.Int64Dtype):
            out[name] = out[name].astype("float64")
        elif name in arrays:
            # lists are not hashable: uniqueness and set rules never apply to them
            out[name] = out[name].map(lambda v: tuple(v) if isinstance(v, list) else v)
    return out


_SUITE_SEQ = [0]


def rule_frame(
    frame: pd.DataFrame, contract: Contract, received_at: pd.Series | pd.Timestamp | None = None
) -> pd.DataFrame:
    """What every engine checks: ``frame`` as Great Expectations' pandas engine takes it, with
    the derived bound columns of the receipt windows."""
    data = _gx_frame(frame, contract)
    for name, bound in receipt_bounds(frame, contract, received_at).items():
        data[name] = bound.reset_index(drop=True)
    return data


def validate_frame(
    frame: pd.DataFrame,
    contract: Contract,
    rules: list[Rule] | None = None,
    received_at: pd.Series | pd.Timestamp | None = None,
    engine: str | None = None,
) -> Validation:
    """Run the contract's rules on ``frame`` (already coerced to the contract's types).

    Returns each rule's result and, per record (by position in ``frame``), the reasons of the
    error-severity rules it breaks, in rule order. For uniqueness rules the first occurrence of
    a key is kept. ``received_at`` is the receipt time that ``receiptWindow`` rules measure
    against. ``engine``: ``duckdb`` (set-based SQL; rules it cannot run exactly as Great
    Expectations does go to Great Expectations) or ``great_expectations``; by default
    ``ORDERTOWER_CONTRACT_ENGINE``.
    """
    from ordertower.settings import get_settings

    rules = compile_rules(contract) if rules is None else rules
    seen: set[str] = set()
    for rule in rules:
        if rule.name in seen:
            raise ContractError(f"{contract.name}: two rules are named {rule.name!r}")
        seen.add(rule.name)
    data = rule_frame(frame, contract, received_at)
    engine = engine or get_settings().contract_engine
    outcomes: dict[str, Outcome] = {}
    rest = rules
    if engine == "duckdb":
        outcomes, rest = sql_outcomes(data, contract, rules)
    if rest:
        outcomes.update(_gx_outcomes(data, contract, rest))
    return _assemble(frame, contract, rules, outcomes, len(data))


def _gx_outcomes(data: pd.DataFrame, contract: Contract, rules: list[Rule]) -> dict[str, Outcome]:
    """Run ``rules`` in Great Expectations (the reference engine) on ``data``."""
    gx, context = _gx()
    _SUITE_SEQ[0] += 1
    suite = gx.ExpectationSuite(name=f"{contract.name}-{_SUITE_SEQ[0]}")
    by_name = {rule.name: rule for rule in rules}
    for rule in rules:
        if not rule.native:
            suite.add_expectation(build_expectation(rule))
    results: list[tuple[Rule, Any]] = []
    if suite.expectations:
        source = context.data_sources.add_or_update_pandas(f"ingest-{contract.name}")
        asset = source.add_dataframe_asset(f"{contract.name}-{_SUITE_SEQ[0]}")
        batch = asset.add_batch_definition_whole_dataframe("all").get_batch(
            batch_parameters={"dataframe": data}
        )
        with warnings.catch_warnings():
            # pandas warns that contract patterns have groups (GX uses str.contains): harmless
            warnings.filterwarnings("ignore", message="This pattern is interpreted as a regular")
            outcome = batch.validate(
                suite, result_format={"result_format": "COMPLETE", "partial_unexpected_count": 0}
            )
        results = [(by_name[res.expectation_config.meta["rule"]], res) for res in outcome.results]
    results += [(rule, _native(rule, data)) for rule in rules if rule.native]
    out: dict[str, Outcome] = {}
    for rule, res in results:
        if res.exception_info and res.exception_info.get("raised_exception"):
            raise ContractError(
                f"{contract.name}: rule {rule.name} could not run: "
                f"{res.exception_info.get('exception_message')}"
            )
        info = res.result or {}
        index = (
            [
                int(i)
                for i in (info.get("unexpected_index_list") or [])
                if isinstance(i, int | float)
            ]
            if rule.row_level
            else []
        )
        if rule.expectation in (
            "expect_column_values_to_be_unique",
            "expect_compound_columns_to_be_unique",
        ):
            index = _later_duplicates(data, rule, index)
        count = len(index) if rule.row_level else int(info.get("unexpected_count") or 0)
        out[rule.name] = Outcome(bool(res.success), sorted(index), count)
    return out


def _assemble(
    frame: pd.DataFrame,
    contract: Contract,
    rules: list[Rule],
    outcomes: dict[str, Outcome],
    rows: int,
) -> Validation:
    """Results in rule order, and each failing record's reasons (whichever engine ran)."""
    reasons: dict[int, list[str]] = defaultdict(list)
    results: list[RuleResult] = []
    for rule in rules:
        res = outcomes[rule.name]
        results.append(RuleResult(rule, res.success, res.count, rows, res.index))
        if rule.severity == ERROR and rule.row_level and res.index:
            # the failing values only (a whole timestamp column as objects costs a batch dearly)
            values = frame[rule.column] if rule.column in frame.columns else None
            column = _column_of(contract, rule.column)
            for i in res.index:
                # a PII column's value never reaches a reason (it is stored and shown)
                shown = reason_value(values.iat[i] if values is not None else None, column)
                prefix = (
                    f"{rule.column}: {shown} "
                    if rule.column
                    else f"{'+'.join(rule.kwargs.get('column_list', []))}: "
                )
                if rule.expectation == "expect_column_values_to_not_be_null":
                    prefix = f"{rule.column}: "
                reasons[i].append(prefix + rule.message)
    # map positions back to the caller's index labels
    labels = list(frame.index)
    return Validation(results, {int(labels[i]): r for i, r in sorted(reasons.items())})


@dataclass
class _NativeResult:
    """What the platform's own evaluation of a rule returns, shaped like a GX result."""

    success: bool
    result: dict[str, Any]
    exception_info: dict[str, Any] | None = None


def _native(rule: Rule, data: pd.DataFrame) -> _NativeResult:
    """``expect_column_pair_values_a_to_be_greater_than_b`` (rows with a missing value are
    ignored, as ``ignore_row_if: either_value_is_missing`` says)."""
    if rule.expectation != "expect_column_pair_values_a_to_be_greater_than_b":
        raise ContractError(f"{rule.name}: no native evaluation of {rule.expectation}")
    a, b = data[rule.kwargs["column_A"]], data[rule.kwargs["column_B"]]
    both = (a.notna() & b.notna()).to_numpy()
    holds = (a >= b) if rule.kwargs.get("or_equal") else (a > b)
    failing = both & ~holds.fillna(False).to_numpy(dtype=bool)
    index = [int(i) for i in failing.nonzero()[0]]
    return _NativeResult(
        not index, {"unexpected_index_list": index, "unexpected_count": len(index)}
    )


def _column_of(contract: Contract, name: str | None) -> Column | None:
    """The contract's column of a rule; a custom rule may name one the contract lacks."""
    try:
        return contract.column(name) if name else None
    except KeyError:
        return None


def _later_duplicates(data: pd.DataFrame, rule: Rule, index: list[int]) -> list[int]:
    """Of the records GX flags as duplicates, all but the first occurrence of each key."""
    if not index:
        return []
    cols = rule.kwargs.get("column_list") or [rule.kwargs["column"]]
    flagged = data.loc[sorted(index), cols]
    return [int(i) for i in flagged.index[flagged.duplicated(keep="first")]]
