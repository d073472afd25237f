"""Enforce a contract on a batch of records: coerce, validate, split into valid and rejected.

One record must never stop the batch. Coercion refuses values of the wrong shape with a
reason; should anything in coercion or validation still fail on some odd record, the batch is
split in halves until the records that fail are found: they are rejected with the error as
their reason and every other record is enforced as usual. An error that every part hits (a
contract Great Expectations cannot run) is the contract's, and is raised.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pandas as pd

from pipelines.contracts.coerce import coerce_frame
from pipelines.contracts.expectations import RuleResult, compile_rules, validate_frame
from pipelines.contracts.model import Contract

log = logging.getLogger(__name__)

#: How many extra validation runs the search for failing records may take (each finds one
#: failing record in about log2(n) runs) before the error is treated as the contract's.
ISOLATION_BUDGET = 96


@dataclass
class Enforcement:
    typed: pd.DataFrame  # every record, cast to the contract's types
    reasons: dict[int, list[str]]  # index label -> why the record is rejected
    results: list[RuleResult]

    @property
    def valid(self) -> pd.DataFrame:
        return self.typed.loc[~self.typed.index.isin(list(self.reasons))]

    @property
    def rejected_index(self) -> list[int]:
        return sorted(self.reasons)


def _enforce(
    frame: pd.DataFrame,
    contract: Contract,
    missing_columns: dict[int, set[str]] | None,
    received_at: pd.Series | pd.Timestamp | None,
    pretyped: pd.DataFrame | None = None,
) -> Enforcement:
    typed, cast_reasons = coerce_frame(frame, contract, missing_columns)
    if pretyped is not None and len(pretyped):
        typed = pd.concat([typed, pretyped]).sort_index() if len(typed) else pretyped
    validation = validate_frame(typed, contract, compile_rules(contract), received_at)
    reasons: dict[int, list[str]] = {}
    for idx in set(cast_reasons) | set(validation.reasons):
        first = list(dict.fromkeys(cast_reasons.get(idx, [])))
        # a value that could not be cast is null now: "required value is missing" says it twice
        flagged = {r.split(":", 1)[0] for r in first}
        rest = [r for r in validation.reasons.get(idx, []) if r.split(":", 1)[0] not in flagged]
        reasons[idx] = first + rest
    return Enforcement(typed, reasons, validation.results)


def enforce(
    frame: pd.DataFrame,
    contract: Contract,
    missing_columns: dict[int, set[str]] | None = None,
    received_at: pd.Series | pd.Timestamp | None = None,
    pretyped: pd.DataFrame | None = None,
) -> Enforcement:
    """Apply every rule of ``contract`` to ``frame`` (raw values; index = record id).

    ``received_at``: each record's receipt time (a Series aligned with the records, or one
    time), which ``receiptWindow`` rules measure against; now when not given.
    ``pretyped``: more records, already cast to the contract's types (typed reads,
    :mod:`pipelines.ingest.typed`), whose index labels are not in ``frame``'s.
    """
    compile_rules(contract)  # a contract that cannot compile fails here, for every batch
    try:
        return _enforce(frame, contract, missing_columns, received_at, pretyped)
    except Exception as exc:  # noqa: BLE001 - find the records that fail, land the rest
        if pretyped is not None and len(pretyped):
            # the search for failing records works on raw values: the typed records as text
            frame = (
                pd.concat([frame, as_raw(pretyped)]).sort_index()
                if len(frame)
                else as_raw(pretyped)
            )
        if len(frame) <= 1:
            return _failed(frame, contract, exc)
        log.warning(
            "%s: enforcing %d records failed (%r); isolating", contract.name, len(frame), exc
        )
        budget = [ISOLATION_BUDGET]
        try:
            return _isolate(frame, contract, missing_columns, received_at, budget, failed=True)
        except _Systemic:
            raise exc from None


def as_raw(typed: pd.DataFrame) -> pd.DataFrame:
    """Typed records as raw values that coerce back to the same types and values (timestamps
    as ISO-8601 text with their offset, missing values as None)."""
    out = {}
    for name in typed.columns:
        series = typed[name]
        if isinstance(series.dtype, pd.DatetimeTZDtype):
            values = [None if pd.isna(v) else v.isoformat() for v in series]
        else:
            values = [
                None if v is None or v is pd.NA or (isinstance(v, float) and v != v) else v
                for v in series.astype(object)
            ]
        out[name] = pd.Series(values, index=typed.index, dtype=object)
    return pd.DataFrame(out, index=typed.index)


class _Systemic(Exception):
    """Every part fails: the error is not one record's."""


def _part_receipts(received_at, frame: pd.DataFrame, part: pd.DataFrame):
    if isinstance(received_at, pd.Series):
        positions = frame.index.get_indexer(part.index)
        return received_at.iloc[positions]
    return received_at


def _isolate(
    frame, contract, missing_columns, received_at, budget, failed: bool = False
) -> Enforcement:
    """Enforce ``frame``; when that fails, each half on its own (``failed``: known to fail)."""
    exc: Exception | None = None
    if not failed:
        if budget[0] <= 0:
            raise _Systemic
        budget[0] -= 1
        try:
            return _enforce(frame, contract, _missing_of(missing_columns, frame), received_at)
        except Exception as error:  # noqa: BLE001
            exc = error
    if len(frame) == 1:
        return _failed(frame, contract, exc or RuntimeError("unknown error"))
    half = len(frame) // 2
    parts = [frame.iloc[:half], frame.iloc[half:]]
    done = [
        _isolate(part, contract, missing_columns, _part_receipts(received_at, frame, part), budget)
        for part in parts
    ]
    return _merge(done, [len(p) for p in parts])


def _missing_of(missing_columns, frame):
    if not missing_columns:
        return missing_columns
    return {i: m for i, m in missing_columns.items() if i in frame.index}


def _failed(frame: pd.DataFrame, contract: Contract, exc: BaseException) -> Enforcement:
    """Records no rule could run on: rejected with the error; typed as all-null rows."""
    typed = pd.DataFrame({c.name: [None] * len(frame) for c in contract.columns}, index=frame.index)
    why = f"record: could not be checked against the contract ({type(exc).__name__}: {str(exc)[:160]})"
    return Enforcement(typed, {int(i): [why] for i in frame.index}, [])


def _merge(parts: list[Enforcement], sizes: list[int]) -> Enforcement:
    # the all-null rows of failed records take the types of the records that went through
    template = next((p.typed.dtypes.to_dict() for p in parts if p.results), None)
    typed = pd.concat(
        [
            p.typed.astype(template) if template is not None and not p.results else p.typed
            for p in parts
        ]
    )
    reasons: dict[int, list[str]] = {}
    for part in parts:
        reasons.update(part.reasons)
    results: dict[str, RuleResult] = {}
    offset = 0
    for part, size in zip(parts, sizes, strict=True):
        for r in part.results:
            shifted = [i + offset for i in r.unexpected_index]
            if r.rule.name not in results:
                results[r.rule.name] = RuleResult(
                    r.rule, r.success, r.unexpected_count, r.evaluated_rows, shifted
                )
            else:
                agg = results[r.rule.name]
                agg.success = agg.success and r.success
                agg.unexpected_count += r.unexpected_count
                agg.evaluated_rows += r.evaluated_rows
                agg.unexpected_index.extend(shifted)
        offset += size
    return Enforcement(typed, reasons, list(results.values()))
