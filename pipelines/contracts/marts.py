"""Contracts of the dbt marts: ODCS documents in ``data_contracts/marts/`` that stewards own.

A mart has two contracts that must say the same thing: the ODCS document (what consumers and
stewards read, lint and diff) and dbt's model contract in ``dbt/models/marts/*.yml``
(``contract: {enforced: true}``, a ``data_type`` per column; dbt refuses to build a mart whose
SQL disagrees with it). :func:`drift` lists every disagreement in columns, their order or their
types; a test fails on any. :func:`scaffold` writes the first ODCS version of a new mart from
its dbt yml, which the steward then edits (owner, SLA, purpose).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ordertower.settings import CONTRACTS_DIR, DBT_PROJECT_DIR
from pipelines.contracts.model import Contract, load_contract

MART_CONTRACTS_DIR = CONTRACTS_DIR / "marts"
MARTS_DIR = DBT_PROJECT_DIR / "models" / "marts"

#: dbt/DuckDB data types -> ODCS logical types
_LOGICAL = (
    (re.compile(r"^(varchar|text|string)$"), "string"),
    (re.compile(r"^(tinyint|smallint|integer|int|bigint|hugeint)$"), "integer"),
    (re.compile(r"^(double|float|real|decimal(\(\d+,\s*\d+\))?|numeric.*)$"), "number"),
    (re.compile(r"^boolean$"), "boolean"),
    (re.compile(r"^date$"), "date"),
    (re.compile(r"^(timestamp with time zone|timestamptz)$"), "timestamp"),
)

#: marts grouped into the platform's domains (the owning team of each)
DOMAINS = {
    "orders": ("order-operations", "Order operations"),
    "visibility": ("visibility", "Visibility and carrier management"),
    "sustainability": ("sustainability", "Sustainability"),
    "inventory": ("supply-chain", "Supply chain planning"),
    "reference": ("master-data", "Master data"),
    "kpi": ("operations-excellence", "Operations excellence"),
}
_MART_DOMAIN = {
    "fct_orders": "orders",
    "fct_order_lines": "orders",
    "fct_order_timeline": "visibility",
    "fct_tracking_events": "visibility",
    "fct_shipment_legs": "visibility",
    "fct_order_exceptions": "visibility",
    "fct_inventory_daily": "inventory",
    "kpi_daily": "kpi",
    "kpi_weekly": "kpi",
}


@dataclass(frozen=True)
class DbtColumn:
    name: str
    data_type: str
    description: str
    tests: tuple[str, ...]


@dataclass(frozen=True)
class DbtModel:
    name: str
    description: str
    enforced: bool
    columns: tuple[DbtColumn, ...]
    path: Path
    #: the columns of the model-level ``unique_combination`` test, when it has one
    unique_combination: tuple[str, ...] = ()

    @property
    def primary_key(self) -> tuple[str, ...]:
        """The first column tested unique and not null (marts put their key first; later
        unique columns, like a leg's tracking reference, are alternate keys); without one, the
        columns of the model's ``unique_combination`` test when each is tested not null."""
        for c in self.columns:
            if {"unique", "not_null"} <= set(c.tests):
                return (c.name,)
        not_null = {c.name for c in self.columns if "not_null" in c.tests}
        if self.unique_combination and set(self.unique_combination) <= not_null:
            return self.unique_combination
        return ()


def normalise_type(data_type: str) -> str:
    """``DECIMAL(18, 2)`` and ``decimal(18,2)`` are the same type."""
    return re.sub(r"\s*,\s*", ",", " ".join(str(data_type).lower().split()))


def logical_type(data_type: str) -> str:
    normal = normalise_type(data_type)
    for pattern, logical in _LOGICAL:
        if pattern.match(normal):
            return logical
    raise ValueError(f"no ODCS logical type for the data type {data_type!r}")


def _test_names(tests: list[Any] | None) -> tuple[str, ...]:
    names = []
    for test in tests or []:
        names.append(test if isinstance(test, str) else next(iter(test)))
    return tuple(names)


def _unique_combination(tests: list[Any] | None) -> tuple[str, ...]:
    for test in tests or []:
        if isinstance(test, dict) and "unique_combination" in test:
            spec = test["unique_combination"] or {}
            args = spec.get("arguments") or spec
            return tuple(args.get("combination_of_columns") or ())
    return ()


def _not_null_columns(tests: list[Any] | None) -> set[str]:
    """The columns of the model-level ``not_null_columns`` tests (one not_null for several)."""
    names: set[str] = set()
    for test in tests or []:
        if isinstance(test, dict) and "not_null_columns" in test:
            spec = test["not_null_columns"] or {}
            names.update((spec.get("arguments") or spec).get("column_names") or ())
    return names


def dbt_models(directory: Path = MARTS_DIR) -> dict[str, DbtModel]:
    """The models declared in the yml files of a dbt folder, by name. A column named by the
    model's ``not_null_columns`` test counts as tested ``not_null``."""
    models: dict[str, DbtModel] = {}
    for path in sorted(directory.rglob("*.yml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for m in doc.get("models") or []:
            config = m.get("config") or {}
            grouped = _not_null_columns(m.get("data_tests") or m.get("tests"))
            columns = tuple(
                DbtColumn(
                    name=c["name"],
                    data_type=str(c.get("data_type") or ""),
                    description=str(c.get("description") or ""),
                    tests=_test_names(c.get("data_tests") or c.get("tests"))
                    + (("not_null",) if c["name"] in grouped else ()),
                )
                for c in m.get("columns") or []
            )
            models[m["name"]] = DbtModel(
                name=m["name"],
                description=" ".join(str(m.get("description") or "").split()),
                enforced=bool((config.get("contract") or {}).get("enforced")),
                columns=columns,
                path=path,
                unique_combination=_unique_combination(m.get("data_tests") or m.get("tests")),
            )
    return models


def drift(contract: Contract, model: DbtModel) -> list[str]:
    """Where an ODCS mart contract and the dbt model contract disagree (empty: they agree)."""
    problems: list[str] = []
    if not model.enforced:
        problems.append(f"{model.name}: dbt model contract is not enforced")
    if contract.table != f"marts.{model.name}":
        problems.append(
            f"{model.name}: ODCS physicalName is {contract.table}, not marts.{model.name}"
        )
    odcs = {c.name: c for c in contract.columns}
    dbt = {c.name: c for c in model.columns}
    for name in dbt.keys() - odcs.keys():
        problems.append(f"{model.name}.{name}: in the dbt contract, missing from the ODCS contract")
    for name in odcs.keys() - dbt.keys():
        problems.append(f"{model.name}.{name}: in the ODCS contract, missing from the dbt contract")
    shared = [n for n in dbt if n in odcs]
    if [n for n in contract.column_names if n in dbt] != shared:
        problems.append(f"{model.name}: columns are in a different order")
    properties = {p["name"]: p for p in contract.document["schema"][0].get("properties") or []}
    for name in shared:
        dbt_type = normalise_type(dbt[name].data_type)
        odcs_type = normalise_type(properties[name].get("physicalType") or "")
        if dbt_type != odcs_type:
            problems.append(
                f"{model.name}.{name}: type {odcs_type or '(none)'} in ODCS, {dbt_type} in dbt"
            )
        elif odcs[name].logical_type != logical_type(dbt_type):
            problems.append(
                f"{model.name}.{name}: logicalType {odcs[name].logical_type} does not fit {dbt_type}"
            )
    pk_odcs = set(contract.primary_key)
    if pk_odcs != set(model.primary_key):
        problems.append(
            f"{model.name}: primary key {sorted(pk_odcs)} in ODCS, "
            f"{sorted(model.primary_key)} (unique + not_null) in dbt"
        )
    return problems


def mart_contracts(directory: Path = MART_CONTRACTS_DIR) -> dict[str, Contract]:
    return {c.name: c for c in (load_contract(p) for p in sorted(directory.glob("*.yaml")))}


def scaffold(model: DbtModel) -> dict[str, Any]:
    """A first ODCS document for a mart, from its dbt yml (the steward completes it)."""
    domain = _MART_DOMAIN.get(model.name, "reference")
    team, team_name = DOMAINS[domain]
    properties = []
    pk = model.primary_key
    for column in model.columns:
        prop: dict[str, Any] = {
            "name": column.name,
            "logicalType": logical_type(column.data_type),
            "physicalType": normalise_type(column.data_type),
            "description": " ".join(column.description.split()),
        }
        if "not_null" in column.tests:
            prop["required"] = True
        if column.name in pk:
            prop.update(primaryKey=True, primaryKeyPosition=pk.index(column.name) + 1)
        if "unique" in column.tests:
            prop["unique"] = True
        properties.append(prop)
    return {
        "apiVersion": "v3.2.0",
        "kind": "DataContract",
        "id": f"urn:ordertower:contract:marts:{model.name}",
        "name": model.name,
        "version": "1.0.0",
        "status": "active",
        "domain": domain,
        "dataProduct": "order_lake",
        "description": {
            "purpose": model.description,
            "usage": "Read by the control-tower dashboards and the ML assets; built by dbt "
            f"(dbt/models/marts/{model.name}.sql) with an enforced model contract.",
        },
        "team": {
            "name": team,
            "members": [
                {"username": f"{team}@ordertower.example", "name": team_name, "role": "owner"}
            ],
        },
        "slaProperties": [{"property": "latency", "value": 1, "unit": "d"}],
        "schema": [
            {
                "name": model.name,
                "physicalName": f"marts.{model.name}",
                "physicalType": "table",
                "logicalType": "object",
                "description": model.description,
                "properties": properties,
            }
        ],
    }


def write_scaffold(model_name: str, force: bool = False) -> Path:
    models = dbt_models()
    if model_name not in models:
        raise ValueError(
            f"no mart {model_name!r} in {MARTS_DIR} (known: {', '.join(sorted(models))})"
        )
    target = MART_CONTRACTS_DIR / f"{model_name}.yaml"
    if target.exists() and not force:
        raise ValueError(f"{target.name} exists; edit it, or pass --force to overwrite it")
    target.parent.mkdir(parents=True, exist_ok=True)
    header = (
        f"# Data contract of the mart {model_name} (marts.{model_name}), built by dbt.\n"
        "# Columns and types must match the dbt model contract in dbt/models/marts/; "
        "tests/test_mart_contracts.py fails when they drift apart.\n"
    )
    body = yaml.safe_dump(
        scaffold(models[model_name]), sort_keys=False, width=100, allow_unicode=True
    )
    target.write_text(header + body, encoding="utf-8")
    return target
