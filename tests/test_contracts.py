"""Contracts: the project's contracts lint clean, rules compile from YAML, diff classifies changes."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from ordertower.settings import CONTRACTS_DIR
from pipelines.contracts import load_contract, load_contracts
from pipelines.contracts.diff import diff_contracts
from pipelines.contracts.enforce import enforce
from pipelines.contracts.expectations import compile_rules
from pipelines.contracts.lint import lint_paths
from pipelines.contracts.model import parse_contract
from pipelines.ingest.sources import SOURCES


def test_every_landed_dataset_has_a_contract_that_lints_clean():
    contracts = load_contracts()
    landed = {d for s in SOURCES for d in s.datasets}
    assert landed == set(contracts)
    errors = [str(f) for f in lint_paths([CONTRACTS_DIR]) if f.severity == "error"]
    assert errors == []


def test_lint_reports_schema_and_platform_errors(tmp_path: Path):
    doc = yaml.safe_load((CONTRACTS_DIR / "orders.yaml").read_text())
    doc["apiVersion"] = "v9"
    doc["schema"][0]["properties"][0]["primaryKey"] = False
    path = tmp_path / "orders.yaml"
    path.write_text(yaml.safe_dump(doc))
    messages = [f.message for f in lint_paths([path])]
    assert any("ODCS schema" in m and "v9" in m for m in messages)

    doc["apiVersion"] = "v3.2.0"
    doc["schema"][0]["properties"].append({"name": "email", "logicalType": "string"})
    path.write_text(yaml.safe_dump(doc))
    messages = [f.message for f in lint_paths([path]) if f.severity == "error"]
    assert any("no primaryKey" in m for m in messages)
    assert any("personal data" in m for m in messages)


def test_rules_come_from_the_contract():
    rules = {r.name: r for r in compile_rules(load_contract("orders"))}
    assert rules["order_id.required"].expectation == "expect_column_values_to_not_be_null"
    assert rules["order_id.unique"].expectation == "expect_column_values_to_be_unique"
    assert rules["channel.enum"].kwargs["value_set"] == ["web", "app", "marketplace", "call_center"]
    assert rules["order_total.range"].kwargs["min_value"] == 0
    legs = {r.name: r for r in compile_rules(load_contract("shipment_legs"))}
    assert legs["shipment_id+leg_no.unique"].expectation == "expect_compound_columns_to_be_unique"
    assert (
        legs["arrival_after_departure"].expectation
        == "expect_column_pair_values_a_to_be_greater_than_b"
    )


def test_a_steward_adds_a_rule_in_yaml_only(tmp_path: Path):
    """A new range rule in the YAML quarantines records without any code change."""
    doc = yaml.safe_load((CONTRACTS_DIR / "order_lines.yaml").read_text())
    frame = pd.DataFrame(
        [
            {
                "order_id": "ORD-00000001",
                "line_no": 1,
                "sku_id": "S",
                "quantity": 40,
                "unit_price": 1.0,
                "discount": 0.0,
            }
        ]
    )
    assert enforce(frame, parse_contract(doc)).reasons == {}
    for prop in doc["schema"][0]["properties"]:
        if prop["name"] == "quantity":
            prop["logicalTypeOptions"]["maximum"] = 20
    reasons = enforce(frame, parse_contract(doc)).reasons
    assert reasons == {0: ["quantity: 40 is outside [1, 20]"]}


def test_warning_rules_report_without_quarantining():
    contract = load_contract("carrier_events")
    rows = [
        {
            "event_id": f"e{i}",
            "carrier_id": "C",
            "feed_format": "rail_csv",
            "tracking_ref": "T",
            "event_ts": "2026-08-20T10:00:00Z",
            "event_code": "UNKNOWN",
            "event_classifier": "ACT",
            "carrier_status_code": "XX",
            "is_unmapped": True,
        }
        for i in range(5)
    ]
    result = enforce(pd.DataFrame(rows), contract)
    assert result.reasons == {}
    failing = {r.rule.name for r in result.results if not r.success}
    assert failing == {"unmapped_codes_are_rare"}


def test_coercion_reasons_are_precise():
    frame = pd.DataFrame(
        [
            {
                "order_id": "ORD-00000001",
                "line_no": "one",
                "sku_id": "S",
                "quantity": 2.5,
                "unit_price": "1,5",
                "discount": None,
            }
        ]
    )
    reasons = enforce(frame, load_contract("order_lines")).reasons[0]
    assert "line_no: 'one' is not an integer" in reasons
    assert "quantity: 2.5 is not an integer" in reasons
    assert "discount: required value is missing" in reasons
    assert not any(r.startswith("unit_price") for r in reasons)  # decimal comma accepted


def test_reasons_never_show_the_values_of_pii_columns():
    email, ip, lat = "jane.doe@nowhere", "999.1.2", "north-ish"
    frame = pd.DataFrame(
        [{"customer_id": "CUS-0000001", "email": email, "home_address_latitude": lat}]
    )
    reasons = enforce(frame, load_contract("customers")).reasons[0]
    text = " | ".join(reasons)
    assert email not in text and lat not in text
    # the column and the rule are named; the value is not
    assert any(r.startswith("email: <pii withheld> does not match the pattern") for r in reasons)
    assert "home_address_latitude: <pii withheld> is not a number" in reasons
    orders = enforce(pd.DataFrame([{"ip_address": ip}]), load_contract("orders")).reasons[0]
    assert ip not in " | ".join(orders)
    assert any(r.startswith("ip_address: <pii withheld> does not match") for r in orders)


def test_personal_data_in_a_non_pii_column_is_withheld_from_reasons():
    frame = pd.DataFrame(
        [
            {
                "order_id": "mail jane.doe@gmail.com, tel +49 151 2345678",
                "line_no": "10.1.2.3",
                "sku_id": "S",
                "quantity": 1,
                "unit_price": 1,
                "discount": 0,
            }
        ]
    )
    reasons = enforce(frame, load_contract("order_lines")).reasons[0]
    text = " | ".join(reasons)
    for value in ("jane.doe@gmail.com", "+49 151 2345678", "10.1.2.3"):
        assert value not in text
    assert "line_no: '<pii withheld>' is not an integer" in reasons
    # an ordinary bad value is still shown: stewards need it to fix the feed
    other = enforce(frame.assign(line_no="one"), load_contract("order_lines")).reasons[0]
    assert "line_no: 'one' is not an integer" in other


def test_default_timezone_reads_local_times_and_converts_them_to_utc(tmp_path: Path):
    """ODCS defaultTimezone: an offset-less timestamp is that zone's wall-clock time (daylight
    time included, as zoneinfo resolves it); a value with an offset keeps it."""
    doc = yaml.safe_load((CONTRACTS_DIR / "orders.yaml").read_text())
    _prop(doc, "order_ts")["logicalTypeOptions"] = {"defaultTimezone": "America/Sao_Paulo"}
    contract = parse_contract(doc)
    frame = pd.DataFrame(
        {
            "order_ts": [
                "2017-10-02 10:56:33",  # standard time, UTC-3
                "2017-11-18 19:28:06",  # daylight time, UTC-2
                "2018-02-17 23:30:00",  # the hour that occurs twice: the earlier (daylight) one
                "2017-10-15 00:30:00",  # the hour skipped by the change: the offset before it
                "2017-10-02T10:56:33Z",  # an explicit offset wins
            ]
        }
    )
    typed = enforce(frame, contract).typed["order_ts"]
    assert [t.isoformat() for t in typed] == [
        "2017-10-02T13:56:33+00:00",
        "2017-11-18T21:28:06+00:00",
        "2018-02-18T01:30:00+00:00",
        "2017-10-15T03:30:00+00:00",
        "2017-10-02T10:56:33+00:00",
    ]
    _prop(doc, "order_ts")["logicalTypeOptions"]["defaultTimezone"] = "Mars/Base"
    path = tmp_path / "orders.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert any("not an IANA time zone" in f.message for f in lint_paths([path]))
    changes = diff_contracts(contract, parse_contract(doc))
    assert ("default time zone changed", True) in [(c.change, c.breaking) for c in changes]


def _changed(mutate) -> list:
    doc = yaml.safe_load((CONTRACTS_DIR / "orders.yaml").read_text())
    old = parse_contract(doc)
    new_doc = yaml.safe_load((CONTRACTS_DIR / "orders.yaml").read_text())
    mutate(new_doc)
    return diff_contracts(old, parse_contract(new_doc))


def _prop(doc: dict, name: str) -> dict:
    return next(p for p in doc["schema"][0]["properties"] if p["name"] == name)


@pytest.mark.parametrize(
    ("mutate", "change", "breaking"),
    [
        (lambda d: d["schema"][0]["properties"].pop(), "removed", True),
        (lambda d: _prop(d, "channel")["enum"].pop(), "enum values removed", True),
        (
            lambda d: _prop(d, "channel")["enum"].append({"value": "kiosk"}),
            "enum values added",
            False,
        ),
        (lambda d: _prop(d, "promo_code").update(required=True), "required added", True),
        (
            lambda d: _prop(d, "order_total")["logicalTypeOptions"].update(maximum=500),
            "maximum tightened",
            True,
        ),
        (
            lambda d: _prop(d, "order_total")["logicalTypeOptions"].update(maximum=10**6),
            "maximum loosened",
            False,
        ),
        (lambda d: _prop(d, "order_total").update(logicalType="string"), "type changed", True),
        (
            lambda d: d["schema"][0]["properties"].append(
                {"name": "gift_note", "logicalType": "string"}
            ),
            "added",
            False,
        ),
        (
            lambda d: _prop(d, "order_id").update(description="Order number."),
            "description changed",
            False,
        ),
    ],
)
def test_diff_classifies_changes(mutate, change, breaking):
    changes = _changed(mutate)
    match = [c for c in changes if c.change == change]
    assert match, [str(c) for c in changes]
    assert match[0].breaking is breaking
