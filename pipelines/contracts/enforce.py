"""Enforce a contract on a batch of records: coerce, validate, split into valid and rejected."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from pipelines.contracts.coerce import coerce_frame
from pipelines.contracts.expectations import RuleResult, compile_rules, validate_frame
from pipelines.contracts.model import Contract


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


def enforce(
    frame: pd.DataFrame, contract: Contract, missing_columns: dict[int, set[str]] | None = None
) -> Enforcement:
    """Apply every rule of ``contract`` to ``frame`` (raw values; index = record id)."""
    typed, cast_reasons = coerce_frame(frame, contract, missing_columns)
    validation = validate_frame(typed, contract, compile_rules(contract))
    reasons: dict[int, list[str]] = {}
    for idx in set(cast_reasons) | set(validation.reasons):
        first = list(dict.fromkeys(cast_reasons.get(idx, [])))
        # a value that could not be cast is null now: "required value is missing" says it twice
        flagged = {r.split(":", 1)[0] for r in first}
        rest = [r for r in validation.reasons.get(idx, []) if r.split(":", 1)[0] not in flagged]
        reasons[idx] = first + rest
    return Enforcement(typed, reasons, validation.results)
