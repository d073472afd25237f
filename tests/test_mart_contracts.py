"""The marts' two contracts (ODCS for stewards, dbt's enforced model contract) never drift."""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path

import pytest

from ordertower.settings import DBT_PROJECT_DIR
from pipelines.cli import main
from pipelines.contracts.marts import (
    MART_CONTRACTS_DIR,
    dbt_models,
    drift,
    mart_contracts,
    normalise_type,
    scaffold,
)
from pipelines.contracts.model import parse_contract

#: the marts issue 3 asks for, by the names dashboards and models read
REQUIRED_MARTS = {
    "fct_orders",
    "fct_order_lines",
    "dim_customer",
    "dim_sku",
    "dim_warehouse",
    "dim_carrier",
    "dim_date",
    "fct_shipment_legs",
    "fct_tracking_events",
    "fct_order_timeline",
    "fct_inventory_daily",
    "fct_order_exceptions",
    "kpi_daily",
    "kpi_weekly",
}


@pytest.fixture(scope="module")
def marts():
    return dbt_models()


@pytest.fixture(scope="module")
def contracts():
    return mart_contracts()


def test_every_required_mart_exists_with_an_enforced_contract(marts):
    missing = REQUIRED_MARTS - marts.keys()
    assert not missing
    assert all(marts[m].enforced for m in REQUIRED_MARTS)
    sql_files = {p.stem for p in (DBT_PROJECT_DIR / "models" / "marts").rglob("*.sql")}
    for mart in marts.values():
        assert mart.name in sql_files, f"no SQL file for {mart.name} under dbt/models/marts"


def test_every_mart_has_a_primary_key_test_and_documentation(marts):
    for mart in marts.values():
        # one unique + not_null column, or a unique_combination of not_null ones
        assert mart.primary_key, f"{mart.name}: no key column(s) tested unique and not null"
        assert mart.description, mart.name
        undocumented = [c.name for c in mart.columns if not c.description.strip()]
        assert not undocumented, f"{mart.name}: {undocumented}"
        untyped = [c.name for c in mart.columns if not c.data_type]
        assert not untyped, f"{mart.name}: {untyped}"


def test_every_intermediate_model_and_column_is_documented():
    models = dbt_models(DBT_PROJECT_DIR / "models" / "intermediate")
    sql = {p.stem for p in (DBT_PROJECT_DIR / "models" / "intermediate").glob("*.sql")}
    assert sql == models.keys()
    for model in models.values():
        assert model.description, model.name
        assert all(c.description.strip() for c in model.columns), model.name


def test_odcs_and_dbt_contracts_agree(marts, contracts):
    enforced = {n for n, m in marts.items() if m.enforced}
    assert enforced == contracts.keys(), "every enforced mart has exactly one ODCS contract"
    problems = [p for name in sorted(enforced) for p in drift(contracts[name], marts[name])]
    assert problems == []


def test_drift_is_detected(marts, contracts):
    """A changed type, a dropped column, a new column and a moved key are each reported."""
    model = marts["fct_orders"]
    doc = copy.deepcopy(contracts["fct_orders"].document)
    props = doc["schema"][0]["properties"]
    by_name = {p["name"]: p for p in props}
    by_name["order_total"]["physicalType"] = "double"
    props.remove(by_name["kg_co2e"])
    props.append({"name": "extra_column", "logicalType": "string", "physicalType": "varchar"})
    by_name["order_id"].pop("primaryKey")
    problems = drift(parse_contract(doc), model)
    text = "\n".join(problems)
    assert "order_total: type double in ODCS, decimal(18,2) in dbt" in text
    assert "kg_co2e: in the dbt contract, missing from the ODCS contract" in text
    assert "extra_column: in the ODCS contract, missing from the dbt contract" in text
    assert "primary key" in text


def test_a_composite_key_is_a_unique_combination_of_not_null_columns(marts):
    search = marts["fct_order_search"]
    assert search.primary_key == ("search_term", "order_id", "matched_on")
    # a column of the combination that may be null makes it no key
    nullable = replace(search, columns=tuple(replace(c, tests=()) for c in search.columns))
    assert nullable.primary_key == ()


def test_type_names_are_normalised():
    assert normalise_type("DECIMAL(18, 2)") == "decimal(18,2)"
    assert normalise_type("TIMESTAMP  WITH TIME ZONE") == "timestamp with time zone"


def test_scaffold_writes_a_contract_that_lints_and_agrees(marts):
    from pipelines.contracts.lint import lint_document

    doc = scaffold(marts["fct_shipment_legs"])
    findings = [f for f in lint_document(doc, "fct_shipment_legs.yaml") if f.severity == "error"]
    assert findings == []
    assert drift(parse_contract(doc), marts["fct_shipment_legs"]) == []


def test_cli_drift_passes_and_scaffold_refuses_to_overwrite(capsys):
    assert main(["contracts", "drift"]) == 0
    assert main(["contracts", "scaffold", "fct_orders"]) == 1
    assert "exists" in capsys.readouterr().err
    assert main(["contracts", "scaffold", "no_such_mart"]) == 1


def test_mart_contracts_live_beside_the_raw_ones():
    assert MART_CONTRACTS_DIR.parent.name == "data_contracts"
    assert all(Path(p).suffix == ".yaml" for p in MART_CONTRACTS_DIR.iterdir())
