"""Load ODCS v3 contracts into a small typed model that the rest of the code reads.

Only the parts of ODCS that the platform enforces are modelled; the full document stays
available as ``Contract.document`` for linting and diffing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ordertower.settings import CONTRACTS_DIR

#: ODCS logical types -> DuckDB column types of the raw layer.
DUCKDB_TYPES = {
    "string": "varchar",
    "integer": "bigint",
    "number": "double",
    "boolean": "boolean",
    "date": "date",
    "timestamp": "timestamptz",
    "time": "time",
    "array": "varchar[]",
    "object": "json",
}

#: Classifications that mark a column as personal data.
PII_CLASSES = {"pii", "restricted"}


class ContractError(ValueError):
    """A contract file cannot be read or does not describe a dataset the platform can land."""


#: Dataset, schema, table and column names reach SQL as identifiers (quoted or not), so they are
#: checked before anything is built from them: lower-case letters, digits and ``_``, starting
#: with a letter or ``_``, at most 63 characters (PostgreSQL's limit; the catalog may be there).
IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")
IDENTIFIER_RULE = (
    "lower-case letters, digits and _, starting with a letter or _, at most 63 characters"
)


def identifier_problem(value: Any) -> str | None:
    """Why ``value`` cannot be a dataset, table or column name, or None when it can."""
    if isinstance(value, str) and IDENTIFIER.fullmatch(value):
        return None
    return f"{value!r} is not a valid identifier ({IDENTIFIER_RULE})"


def _check_identifier(contract: str, what: str, value: Any) -> None:
    problem = identifier_problem(value)
    if problem:
        raise ContractError(f"contract {contract!r}: {what} {problem}")


@dataclass(frozen=True)
class ReceiptWindow:
    """How far a timestamp may lie from the moment its record was received (a column's
    ``customProperties`` ``receiptWindow``): a clock ahead of time, a date in the future or a
    date decades old is refused with a reason instead of misleading everything downstream.

    The receipt is when the platform got the record: a live message's publication time (never
    later than when the consumer took it), a landed file's partition day (its end, never later
    than the ingestion). Rows whose ``forecast_column`` holds one of ``forecast_values`` are
    forecasts (an estimated arrival lies ahead by nature) and get their own upper bound.
    """

    not_after_hours: float | None = None
    not_before_hours: float | None = None
    forecast_column: str | None = None
    forecast_values: tuple[Any, ...] = ()
    forecast_not_after_hours: float | None = None


@dataclass(frozen=True)
class Column:
    name: str
    logical_type: str
    description: str = ""
    required: bool = False
    unique: bool = False
    primary_key: bool = False
    primary_key_position: int = -1
    enum: tuple[Any, ...] | None = None
    minimum: Any = None
    maximum: Any = None
    exclusive_minimum: Any = None
    exclusive_maximum: Any = None
    pattern: str | None = None
    min_length: int | None = None
    max_length: int | None = None
    timezone: bool | None = None
    #: IANA zone in which a timestamp without an offset is read (ODCS ``defaultTimezone``)
    default_timezone: str | None = None
    classification: str | None = None
    tags: tuple[str, ...] = ()
    quality: tuple[dict[str, Any], ...] = ()
    receipt_window: ReceiptWindow | None = None

    @property
    def duckdb_type(self) -> str:
        return DUCKDB_TYPES[self.logical_type]

    @property
    def is_pii(self) -> bool:
        return (self.classification or "").lower() in PII_CLASSES or "pii" in self.tags


@dataclass(frozen=True)
class Contract:
    name: str
    version: str
    id: str
    status: str
    domain: str
    title: str
    description: str
    table: str  # schema.table in the lake
    columns: tuple[Column, ...]
    owner: str
    freshness_hours: float | None
    max_quarantine_rate: float
    quality: tuple[dict[str, Any], ...]
    path: Path | None = None
    document: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def primary_key(self) -> tuple[str, ...]:
        keys = [c for c in self.columns if c.primary_key]
        return tuple(c.name for c in sorted(keys, key=lambda c: c.primary_key_position))

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def pii_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.is_pii)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


def _custom(doc: dict[str, Any], name: str, default: Any = None) -> Any:
    for prop in doc.get("customProperties") or []:
        if prop.get("property") == name:
            return prop.get("value")
    return default


def _hours(value: float, unit: str) -> float:
    unit = (unit or "h").lower()
    factor = {
        "m": 1 / 60,
        "min": 1 / 60,
        "h": 1,
        "hr": 1,
        "hour": 1,
        "hours": 1,
        "d": 24,
        "day": 24,
        "days": 24,
    }.get(unit)
    if factor is None:
        raise ContractError(f"unknown SLA unit {unit!r} (use min, h or d)")
    return float(value) * factor


def _duration_hours(value: Any, where: str) -> float:
    """``"1h"``, ``"90min"``, ``"3650d"`` (or a number of hours) -> hours."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-z]+)\s*", str(value).lower())
    if not match:
        raise ContractError(f"{where}: {value!r} is not a duration such as 1h, 90min or 30d")
    return _hours(float(match.group(1)), match.group(2))


def _receipt_window(prop: dict[str, Any]) -> ReceiptWindow | None:
    value = _custom(prop, "receiptWindow")
    if value is None:
        return None
    where = f"column {prop.get('name')!r}: receiptWindow"
    if prop.get("logicalType") != "timestamp":
        raise ContractError(f"{where} applies to timestamp columns only")
    if not isinstance(value, dict):
        raise ContractError(f"{where} must be a mapping (notAfter, notBefore, forecasts)")
    unknown = set(value) - {"notAfter", "notBefore", "forecasts"}
    if unknown:
        raise ContractError(f"{where}: unknown keys {sorted(unknown)}")
    forecasts = value.get("forecasts") or {}
    if not isinstance(forecasts, dict) or (
        forecasts and not (forecasts.get("column") and forecasts.get("values"))
    ):
        raise ContractError(f"{where}: forecasts needs column, values and optionally notAfter")

    def hours(v: Any, key: str) -> float | None:
        return None if v is None else _duration_hours(v, f"{where}.{key}")

    return ReceiptWindow(
        not_after_hours=hours(value.get("notAfter"), "notAfter"),
        not_before_hours=hours(value.get("notBefore"), "notBefore"),
        forecast_column=forecasts.get("column"),
        forecast_values=tuple(forecasts.get("values") or ()),
        forecast_not_after_hours=hours(forecasts.get("notAfter"), "forecasts.notAfter"),
    )


def _column(prop: dict[str, Any]) -> Column:
    opts = prop.get("logicalTypeOptions") or {}
    logical = prop.get("logicalType")
    if logical not in DUCKDB_TYPES:
        raise ContractError(f"column {prop.get('name')!r}: unsupported logicalType {logical!r}")
    enum = prop.get("enum")
    return Column(
        name=prop["name"],
        logical_type=logical,
        description=prop.get("description") or "",
        required=bool(prop.get("required", False)),
        unique=bool(prop.get("unique", False)),
        primary_key=bool(prop.get("primaryKey", False)),
        primary_key_position=int(prop.get("primaryKeyPosition", -1)),
        enum=tuple(e["value"] if isinstance(e, dict) else e for e in enum) if enum else None,
        minimum=opts.get("minimum"),
        maximum=opts.get("maximum"),
        exclusive_minimum=opts.get("exclusiveMinimum"),
        exclusive_maximum=opts.get("exclusiveMaximum"),
        pattern=opts.get("pattern"),
        min_length=opts.get("minLength"),
        max_length=opts.get("maxLength"),
        timezone=opts.get("timezone"),
        default_timezone=opts.get("defaultTimezone"),
        classification=prop.get("classification"),
        tags=tuple(prop.get("tags") or ()),
        quality=tuple(prop.get("quality") or ()),
        receipt_window=_receipt_window(prop),
    )


def parse_contract(doc: dict[str, Any], path: Path | None = None) -> Contract:
    """Build the typed model from a parsed ODCS document."""
    if not isinstance(doc, dict):
        raise ContractError("a contract must be a YAML mapping")
    schema = doc.get("schema") or []
    if len(schema) != 1:
        raise ContractError("each contract describes exactly one dataset (one schema object)")
    obj = schema[0]
    name = doc.get("name") or obj["name"]
    _check_identifier(str(name), "name", name)
    _check_identifier(str(name), "dataset name (schema/0/name)", obj["name"])
    table = obj.get("physicalName") or f"raw.{obj['name']}"
    if not isinstance(table, str) or table.count(".") != 1:
        raise ContractError(f"physicalName must be schema.table, not {table!r}")
    for part in table.split("."):
        _check_identifier(str(name), f"physicalName {table!r}: part", part)
    for prop in obj.get("properties") or []:
        _check_identifier(str(name), "column", prop.get("name") if isinstance(prop, dict) else prop)
    columns = tuple(_column(p) for p in obj.get("properties") or [])
    if not columns:
        raise ContractError("the dataset has no properties (columns)")
    team = doc.get("team") or {}
    members = team.get("members", []) if isinstance(team, dict) else team
    owners = [m.get("username") or m.get("name") for m in members if m.get("role") == "owner"]
    freshness = None
    for sla in doc.get("slaProperties") or []:
        if sla.get("property") in ("latency", "freshness"):
            freshness = _hours(sla["value"], sla.get("unit", "h"))
    description = doc.get("description") or {}
    return Contract(
        name=name,
        version=str(doc.get("version", "")),
        id=str(doc.get("id", "")),
        status=str(doc.get("status", "")),
        domain=str(doc.get("domain", "")),
        title=obj.get("description") or obj["name"],
        description=description.get("purpose", "") if isinstance(description, dict) else "",
        table=table,
        columns=columns,
        owner=owners[0] if owners else "",
        freshness_hours=freshness,
        max_quarantine_rate=float(_custom(doc, "maxQuarantineRate", 0.01)),
        quality=tuple(obj.get("quality") or ()),
        path=path,
        document=doc,
    )


#: libyaml's parser where PyYAML has it (the same safe constructor, about 10x faster: every
#: ingestion asset loads its contracts)
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            return yaml.load(fh, Loader=_SAFE_LOADER)  # noqa: S506 (a safe loader)
    except FileNotFoundError as exc:
        raise ContractError(f"{path}: no such contract file") from exc
    except yaml.YAMLError as exc:
        raise ContractError(f"{path}: not valid YAML: {exc}") from exc


def load_contract(name_or_path: str | Path, contracts_dir: Path | None = None) -> Contract:
    """Load one contract by dataset name (``orders``) or by file path."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = (contracts_dir or CONTRACTS_DIR) / f"{name_or_path}.yaml"
    try:
        return parse_contract(read_yaml(path), path)
    except (KeyError, TypeError) as exc:
        raise ContractError(f"{path}: missing or malformed field {exc}") from exc
    except ContractError as exc:
        raise ContractError(f"{path.name}: {exc}") from exc


def load_contracts(contracts_dir: Path | None = None) -> dict[str, Contract]:
    """Every contract of the project, by dataset name."""
    directory = contracts_dir or CONTRACTS_DIR
    contracts = {}
    for path in sorted(directory.glob("*.yaml")):
        contract = load_contract(path)
        contracts[contract.name] = contract
    return contracts
