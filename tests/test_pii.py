"""Personal data: the keyed hash, its key, the patterns, and the scanner (docs/pii.md)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sqlite3
import stat
from pathlib import Path

import duckdb
import pytest

from ordertower.pii import (
    find_pii,
    hmac_hasher,
    mask_sample,
    register_pii_functions,
    withhold,
)
from ordertower.settings import get_settings
from pipelines.cli import main
from pipelines.pii_scan import scan

EMAIL, PHONE, IP, STREET = (
    "jane.doe42@gmail.com",
    "+49 151 2345678",
    "81.2.69.160",
    "Kalverstraat 3",
)


@pytest.mark.parametrize("key", [bytes(range(32)), b"k" * 16, b"x" * 100])
def test_the_keyed_hash_is_hmac_sha256(key: bytes) -> None:
    for value in ("2.57.202.192", "dev_7d4408d030cc5cba", "Straße 1", ""):
        expected = hmac.new(key, value.encode(), hashlib.sha256).hexdigest()
        assert hmac_hasher(key)(value) == expected


def test_pii_hmac_runs_in_sql_and_keeps_its_key_out_of_the_catalog() -> None:
    key = os.urandom(32)
    con = duckdb.connect()
    register_pii_functions(con, key=key)
    register_pii_functions(con, key=key)  # idempotent
    rows = con.execute(
        "select v, pii_hmac(v) from (values ('1.2.3.4'), (null)) t(v) order by v nulls last"
    ).fetchall()
    assert rows == [
        ("1.2.3.4", hmac.new(key, b"1.2.3.4", hashlib.sha256).hexdigest()),
        (None, None),
    ]
    assert con.cursor().execute("select pii_hmac('a')").fetchone()[0]  # cursors inherit it
    listing = str(con.execute("select * from duckdb_functions()").fetchall())
    assert key.hex() not in listing and "pii_hmac" in listing
    assert con.execute("select pii_hmac('a')").fetchone()[0] != hashlib.sha256(b"a").hexdigest()


def test_the_key_file_is_created_once_private_and_outside_the_lake(
    lake_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ORDERTOWER_PII_KEY", raising=False)
    monkeypatch.delenv("ORDERTOWER_PII_KEY_FILE", raising=False)
    settings = get_settings()
    key = settings.pii_key()
    assert len(key) == 32 and settings.pii_key() == key  # stable across calls
    path = lake_home / "secrets" / "pii_hmac.key"
    assert settings.pii_key_file == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert key.hex() not in json.dumps(settings.dbt_env())  # dbt learns where, never what
    monkeypatch.setenv("ORDERTOWER_PII_KEY", "ab" * 32)
    assert get_settings().pii_key() == bytes.fromhex("ab" * 32)
    monkeypatch.setenv("ORDERTOWER_PII_KEY", "not-hex")
    with pytest.raises(ValueError, match="ORDERTOWER_PII_KEY") as err:
        get_settings().pii_key()
    assert "not-hex" not in str(err.value)


@pytest.mark.parametrize(
    "text",
    [
        "2026-08-20T12:00:00+02:00",
        "2026-08-20 12:00:00+0200",
        "order_total 1234.56, +12.50 EUR",
        "ORD-000000001 CUS-0000042 SKU-000123-45",
        "TRK1234567890DE JD014600006543219876 1Z999AA10123456784",
        "1765432123.123456",
        "lightgbm==4.6.0 protobuf==6.33.0.1 v1.2.3.4",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/120.0.0.0 Safari/537.36",
        "10.0.0.0/8 127.0.0.1 0.0.0.0",
        "leaf_value=0.1234567 -0.2345678 split=0 12345 67890",
        "risk-stewards@ordertower.example",
        "fc5b7e330acb35fdde579aaef39c0e5690cea713f0479574836f517194fea30d",
    ],
)
def test_patterns_leave_timestamps_numbers_versions_and_ids_alone(text: str) -> None:
    assert find_pii(text) == []


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        (f"write to {EMAIL}.", "email"),
        (f"tel {PHONE}", "phone"),
        ("+1 (212) 555-0100", "phone"),
        ("(030) 1234567", "phone"),
        (f"from {IP}:443", "ipv4"),
        ("http://81.2.69.160/x", "ipv4"),
        ("Hauptstraße 12", "street_address"),
        ("12 Main Street", "street_address"),
        ("Calle Mayor 3", "street_address"),
    ],
)
def test_patterns_find_pii(text: str, kind: str) -> None:
    found = find_pii(text)
    assert kind in {m.kind for m in found}
    for m in found:
        assert m.text not in mask_sample(m.text) or not any(c.isalnum() for c in m.text)
    assert "<pii withheld>" in withhold(text)


def _plant(lake_writer: duckdb.DuckDBPyConnection, home: Path) -> None:
    # the simulator's truth: a street that no generic pattern knows
    lake_writer.execute("create schema if not exists raw")
    lake_writer.execute(
        "create table raw.customers as select 'Kalverstraat 12' as home_address_street, "
        f"'{EMAIL}' as email"
    )
    lake_writer.execute(
        "create table marts.planted as select * from (values "
        f"('ORD-1', 'mail {EMAIL}', 1.5, null), ('ORD-2', 'call {PHONE}', 2.0, 'plain'), "
        f"('ORD-3', 'seen at {IP}', null, 'plain'), ('ORD-4', 'ship to {STREET}', 3.0, null), "
        f"('ORD-5', 'nothing 2026-08-20T10:00:00+02:00', 4.0, 'or {EMAIL}')) "
        # a number between the text columns, and a column name that needs quoting
        't(order_id, note, amount, "odd ""name""")'
    )
    lake_writer.execute(
        "insert into quarantine.rejected_records values ('r', 'customers', '2026-08-20', 'f', 1, "
        f"'email.pattern', ['email: <pii withheld> does not match'], '{EMAIL},{PHONE}', now(), "
        "['email.pattern'])"
    )
    (home / "stream_demo.log").write_text(f"ok\nalert for {EMAIL} / {PHONE} at {IP}, {STREET}\n")
    (home / "crm").mkdir()
    with sqlite3.connect(home / "crm" / "receiver.sqlite") as db:
        db.execute("create table messages (payload text)")
        db.execute("insert into messages values (?)", [json.dumps({"to": EMAIL})])


def test_the_scanner_catches_planted_pii_in_a_table_and_in_files(
    lake_writer: duckdb.DuckDBPyConnection, lake_home: Path, capsys: pytest.CaptureFixture
) -> None:
    _plant(lake_writer, lake_home)
    report = scan(con=lake_writer)
    found = {(f.surface, f.location, f.column, f.kind): f for f in report.findings}
    for kind in ("email", "phone", "ipv4", "street_address"):
        assert found[("lake", "marts.planted", "note", kind)].count == 1
        assert ("logs", "stream_demo.log", "", kind) in found
    assert found[("lake", "marts.planted", 'odd "name"', "email")].count == 1
    assert report.scanned["lake"]["columns"] >= 3  # order_id, note, odd "name"; not amount
    assert ("crm", "crm/receiver.sqlite", "messages.payload", "email") in found
    # raw holds PII by design, and the quarantine's original text is for stewards only
    assert not any(
        f.location.startswith("raw.") or f.column == "raw_record" for f in report.findings
    )
    text = json.dumps(report.as_dict())
    for value in (EMAIL, PHONE, IP, STREET):
        assert value not in text  # samples are masked
    assert main(["pii", "scan", "--format", "json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert not out["clean"] and EMAIL not in json.dumps(out)
    lake_writer.execute("drop table marts.planted")
    (lake_home / "stream_demo.log").unlink()
    (lake_home / "crm" / "receiver.sqlite").unlink()
    assert scan(con=lake_writer).clean
    assert main(["pii", "scan"]) == 0
