"""Classify the changes between two versions of a contract as breaking or not.

Breaking means: data valid under one version can be refused by the other, or a consumer's
assumption stops holding. Columns removed or retyped, key or nullability changes, enum values
removed, constraints tightened and new error-severity rules are breaking. New optional columns,
enum values added, constraints loosened and documentation, owner or SLA edits are not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipelines.contracts.expectations import is_warning
from pipelines.contracts.model import Column, Contract


@dataclass(frozen=True)
class Change:
    where: str
    change: str
    old: Any
    new: Any
    breaking: bool

    def __str__(self) -> str:
        flag = "BREAKING" if self.breaking else "ok      "
        return f"{flag}  {self.where}: {self.change} ({self.old!r} -> {self.new!r})"


def _error_rules(quality: tuple[dict[str, Any], ...]) -> list[dict[str, Any]]:
    """Quality entries that quarantine records (warnings only report)."""
    return [q for q in quality if not is_warning(q)]


def _bound_change(where: str, name: str, old: Any, new: Any, lower: bool) -> Change | None:
    if old == new:
        return None
    if old is None:
        return Change(where, f"{name} added", old, new, True)
    if new is None:
        return Change(where, f"{name} removed", old, new, False)
    try:
        tightened = (float(new) > float(old)) if lower else (float(new) < float(old))
    except (TypeError, ValueError):
        tightened = str(new) > str(old) if lower else str(new) < str(old)
    return Change(where, f"{name} {'tightened' if tightened else 'loosened'}", old, new, tightened)


def _column_changes(old: Column, new: Column) -> list[Change]:
    w = f"column {new.name}"
    out: list[Change] = []
    if old.logical_type != new.logical_type:
        out.append(Change(w, "type changed", old.logical_type, new.logical_type, True))
    if old.required != new.required:
        out.append(
            Change(
                w,
                "required " + ("added" if new.required else "removed"),
                old.required,
                new.required,
                True,
            )
        )
    if old.unique != new.unique:
        out.append(
            Change(
                w, "unique " + ("added" if new.unique else "removed"), old.unique, new.unique, True
            )
        )
    if old.enum != new.enum:
        if new.enum is None:
            out.append(Change(w, "enum removed", old.enum, None, False))
        elif old.enum is None:
            out.append(Change(w, "enum added", None, new.enum, True))
        else:
            removed = sorted(set(map(str, old.enum)) - set(map(str, new.enum)))
            added = sorted(set(map(str, new.enum)) - set(map(str, old.enum)))
            if removed:
                out.append(Change(w, "enum values removed", removed, None, True))
            if added:
                out.append(Change(w, "enum values added", None, added, False))
    if old.pattern != new.pattern:
        out.append(
            Change(
                w,
                "pattern " + ("removed" if new.pattern is None else "changed"),
                old.pattern,
                new.pattern,
                new.pattern is not None,
            )
        )
    for name, lower in (
        ("minimum", True),
        ("exclusive_minimum", True),
        ("min_length", True),
        ("maximum", False),
        ("exclusive_maximum", False),
        ("max_length", False),
    ):
        change = _bound_change(w, name, getattr(old, name), getattr(new, name), lower)
        if change:
            out.append(change)
    if old.timezone != new.timezone:
        out.append(
            Change(
                w, "timezone requirement changed", old.timezone, new.timezone, bool(new.timezone)
            )
        )
    if old.default_timezone != new.default_timezone:
        # the same offset-less text lands as another instant
        out.append(
            Change(w, "default time zone changed", old.default_timezone, new.default_timezone, True)
        )
    if old.is_pii != new.is_pii:
        # declassifying personal data is a governance decision a reviewer must see
        out.append(
            Change(
                w,
                "PII classification " + ("added" if new.is_pii else "removed"),
                old.classification,
                new.classification,
                not new.is_pii,
            )
        )
    elif old.classification != new.classification:
        out.append(
            Change(w, "classification changed", old.classification, new.classification, False)
        )
    if old.description != new.description:
        out.append(
            Change(w, "description changed", old.description[:40], new.description[:40], False)
        )
    old_q, new_q = _error_rules(old.quality), _error_rules(new.quality)
    if old_q != new_q:
        out.append(Change(w, "error-severity quality rules changed", len(old_q), len(new_q), True))
    return out


def diff_contracts(old: Contract, new: Contract) -> list[Change]:
    changes: list[Change] = []
    if old.table != new.table:
        changes.append(Change("dataset", "table renamed", old.table, new.table, True))
    if old.primary_key != new.primary_key:
        changes.append(
            Change("dataset", "primary key changed", old.primary_key, new.primary_key, True)
        )
    old_cols = {c.name: c for c in old.columns}
    new_cols = {c.name: c for c in new.columns}
    for name in old_cols.keys() - new_cols.keys():
        changes.append(Change(f"column {name}", "removed", name, None, True))
    for name in sorted(new_cols.keys() - old_cols.keys()):
        required = new_cols[name].required
        changes.append(
            Change(
                f"column {name}",
                "added" + (" as required" if required else ""),
                None,
                name,
                required,
            )
        )
    for name in sorted(old_cols.keys() & new_cols.keys()):
        changes.extend(_column_changes(old_cols[name], new_cols[name]))
    if old.version == new.version and changes:
        changes.append(Change("dataset", "version not bumped", old.version, new.version, False))
    for attr in ("owner", "freshness_hours", "max_quarantine_rate", "status", "description"):
        if getattr(old, attr) != getattr(new, attr):
            changes.append(
                Change("dataset", f"{attr} changed", getattr(old, attr), getattr(new, attr), False)
            )
    old_q, new_q = _error_rules(old.quality), _error_rules(new.quality)
    if old_q != new_q:
        changes.append(
            Change("dataset", "error-severity quality rules changed", len(old_q), len(new_q), True)
        )
    return sorted(changes, key=lambda c: (not c.breaking, c.where))
