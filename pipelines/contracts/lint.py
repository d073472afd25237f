"""Lint contracts: the ODCS v3 JSON schema, the ODCS model, and the platform's own rules.

A steward runs ``ordertower contracts lint`` before committing an edit; CI runs it on every
contract. Findings are errors (the contract cannot be enforced) or warnings (it can, but a
steward should look).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from ordertower.settings import LAKE_SCHEMAS
from pipelines.contracts.expectations import build_expectation, compile_rules
from pipelines.contracts.model import (
    ContractError,
    _custom,
    identifier_problem,
    parse_contract,
    read_yaml,
)

#: Column names that almost always hold personal data and must carry a classification.
_PII_NAMES = re.compile(
    r"(^|_)(email|phone|full_name|first_name|last_name|street|ip_address|ip_addresses|birth)(_|$)"
)


@dataclass(frozen=True)
class Finding:
    path: str
    severity: str  # "error" | "warning"
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.severity}: {self.where}: {self.message}"


@lru_cache(maxsize=1)
def _validator():
    import jsonschema

    schema = json.loads(
        resources.files("open_data_contract_standard").joinpath("schema.json").read_text()
    )
    return jsonschema.Draft201909Validator(schema)


def _is_zone(name: str) -> bool:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _location(error: Any) -> str:
    return "/".join(str(p) for p in error.absolute_path) or "(root)"


def _identifier_findings(doc: dict[str, Any], path: str) -> list[Finding]:
    """Every dataset, table and column name that is not a plain SQL identifier, where it is."""
    names: list[tuple[str, Any]] = [("name", doc["name"])] if "name" in doc else []
    for i, obj in enumerate(doc.get("schema") or []):
        if not isinstance(obj, dict):
            continue
        names.append((f"schema/{i}/name", obj.get("name")))
        if obj.get("physicalName") is not None:
            table = str(obj["physicalName"])
            names += [(f"schema/{i}/physicalName", part) for part in table.split(".")]
        for j, prop in enumerate(obj.get("properties") or []):
            if isinstance(prop, dict):
                names.append((f"schema/{i}/properties/{j}/name", prop.get("name")))
    return [
        Finding(path, "error", where, problem)
        for where, value in names
        if (problem := identifier_problem(value))
    ]


def lint_document(doc: Any, path: str) -> list[Finding]:
    findings: list[Finding] = []
    if not isinstance(doc, dict):
        return [Finding(path, "error", "(root)", "a contract must be a YAML mapping")]
    for error in sorted(_validator().iter_errors(doc), key=lambda e: list(e.absolute_path)):
        findings.append(
            Finding(path, "error", _location(error), f"ODCS schema: {error.message[:300]}")
        )
    try:
        from open_data_contract_standard.model import OpenDataContractStandard

        OpenDataContractStandard.model_validate(doc)
    except Exception as exc:  # pydantic ValidationError: report its first lines
        first = str(exc).splitlines()[:3]
        findings.append(Finding(path, "error", "(model)", "ODCS model: " + " | ".join(first)))
    if findings:
        return findings
    findings = _identifier_findings(doc, path)
    if findings:  # never build anything (SQL included) from a name that is not an identifier
        return findings
    try:
        contract = parse_contract(doc, Path(path))
        rules = compile_rules(contract)
    except (ContractError, KeyError, TypeError, ValueError) as exc:
        return [Finding(path, "error", "(platform)", str(exc))]
    schema = contract.table.split(".")[0]
    if schema not in LAKE_SCHEMAS:
        findings.append(
            Finding(
                path,
                "error",
                "schema/0/physicalName",
                f"schema {schema!r} is not a lake schema ({', '.join(LAKE_SCHEMAS)})",
            )
        )
    if Path(path).stem != contract.name:
        findings.append(Finding(path, "error", "name", f"file name must be {contract.name}.yaml"))
    if not contract.primary_key and not _custom(doc, "keylessReason"):
        findings.append(
            Finding(
                path,
                "error",
                "schema/0/properties",
                "no primaryKey column (or customProperties keylessReason saying why)",
            )
        )
    if not contract.owner:
        findings.append(Finding(path, "error", "team", "no team member with role: owner"))
    if contract.freshness_hours is None:
        findings.append(Finding(path, "warning", "slaProperties", "no latency (freshness) SLA"))
    for i, column in enumerate(contract.columns):
        where = f"schema/0/properties/{i} ({column.name})"
        if not column.description and not column.primary_key:
            findings.append(Finding(path, "warning", where, "no description"))
        if _PII_NAMES.search(column.name) and not column.classification:
            findings.append(
                Finding(path, "error", where, "looks like personal data but has no classification")
            )
        if column.pattern:
            try:
                re.compile(column.pattern)
            except re.error as exc:
                findings.append(Finding(path, "error", where, f"pattern does not compile: {exc}"))
        if column.default_timezone:
            if not _is_zone(column.default_timezone):
                findings.append(
                    Finding(
                        path,
                        "error",
                        where,
                        f"defaultTimezone {column.default_timezone!r} is not an IANA time zone",
                    )
                )
            elif column.timezone:
                findings.append(
                    Finding(
                        path,
                        "warning",
                        where,
                        "defaultTimezone is unused: timezone: true refuses timestamps without an offset",
                    )
                )
        window = column.receipt_window
        if (
            window
            and window.forecast_column
            and window.forecast_column not in contract.column_names
        ):
            findings.append(
                Finding(
                    path,
                    "error",
                    where,
                    f"receiptWindow forecasts: unknown column {window.forecast_column!r}",
                )
            )
        if column.primary_key and not column.required:
            findings.append(Finding(path, "error", where, "a primary key column must be required"))
    seen: set[str] = set()
    for rule in rules:
        if rule.name in seen:
            findings.append(Finding(path, "error", rule.name, "two rules have this name"))
        seen.add(rule.name)
        try:
            build_expectation(rule)  # the expectation exists and accepts these arguments
        except Exception as exc:  # GX raises pydantic and its own errors
            findings.append(
                Finding(
                    path,
                    "error",
                    rule.name,
                    f"not a valid Great Expectations rule: {str(exc).splitlines()[0][:200]}",
                )
            )
        if rule.row_level and rule.column and rule.column not in contract.column_names:
            findings.append(
                Finding(path, "error", rule.name, f"rule refers to unknown column {rule.column!r}")
            )
    return findings


def lint_paths(paths: list[Path]) -> list[Finding]:
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files.extend(sorted(p.rglob("*.yaml")) + sorted(p.rglob("*.yml")))
        elif p.exists():
            files.append(p)
        else:
            return [Finding(str(p), "error", "(file)", "no such file or directory")]
    if not files:
        return [Finding(" ".join(map(str, paths)), "error", "(file)", "no contract files found")]
    findings: list[Finding] = []
    for f in files:
        try:
            doc = read_yaml(f)
        except ContractError as exc:
            findings.append(Finding(str(f), "error", "(yaml)", str(exc)))
            continue
        findings.extend(lint_document(doc, str(f)))
    return findings
