"""The dashboards driven in-process with Streamlit's AppTest (no browser).

AppTest runs ``dashboards/app.py`` through ``st.navigation`` exactly as ``streamlit run`` would,
against a temporary lake, so a broken query, a widget wired to the wrong key or a traceback on
an empty lake fails here in seconds.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from dashboards import components, data
from ordertower.lake import connect
from tests.auth_support import app_as, open_page

APP = Path(__file__).resolve().parent.parent / "dashboards" / "app.py"
#: Generous: the first run in a process imports plotly and loads the DuckDB extensions.
TIMEOUT = 60

pytestmark = pytest.mark.usefixtures("fresh_streamlit_caches")


def run_app(role: str = "steward") -> AppTest:
    at = open_page(app_as(role, TIMEOUT), "data_quality")
    assert not at.exception, [e.value for e in at.exception]
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def table_with(at: AppTest, column: str) -> pd.DataFrame:
    """The one dataframe on the page that has ``column`` (tables are found by content)."""
    frames = [df.value for df in at.dataframe if column in df.value.columns]
    assert len(frames) == 1, f"expected one table with {column!r}, found {len(frames)}"
    return frames[0]


def test_renders_seeded_lake(seeded_lake) -> None:
    at = run_app()
    assert at.title[0].value == "Data quality"
    shown = metrics(at)
    assert shown["Datasets"] == "7"
    assert shown["Datasets breaching SLA"] == "1"  # carrier_events: 10 h old, 6 h SLA
    assert shown["Quarantine rate"].endswith("%")
    assert int(shown["Records received"].replace(",", "")) > 50_000
    assert not at.error and not at.info
    # an ingestion-only lake has no marts: the marts section says so (every contract is MISSING)
    assert [w.value.split(":")[0] for w in at.warning] == [
        f"{len(table_with(at, 'mart'))} mart(s) missing or older than their contract's SLA"
    ]
    # Default window: the latest 14 daily partitions (plus unpartitioned snapshots).
    start, end = at.date_input(key="dq_dates").value
    assert end.isoformat() == seeded_lake.partitions[-1]
    assert (end - start).days == 13
    parts = table_with(at, "partition_key")
    assert set(parts["dataset"]) == set(seeded_lake.datasets)
    assert "__all__" in set(parts["partition_key"])
    assert parts["conserved"].all()
    # Freshness: the late dataset comes first; contract rules: failing rules first.
    fresh = table_with(at, "freshness_sla_hours")
    assert fresh.iloc[0]["dataset"] == "carrier_events"
    assert fresh.iloc[0]["status"] == "LATE"
    rules = table_with(at, "expectation")
    assert list(rules["result"]) == sorted(rules["result"], key=lambda r: r != "FAIL")
    assert "order_id: required value is missing" in set(table_with(at, "reason")["reason"])


def test_dataset_filter_narrows_everything(seeded_lake) -> None:
    at = run_app()
    at.multiselect(key="dq_datasets").set_value(["orders", "order_lines"]).run()
    assert not at.exception
    shown = metrics(at)
    assert shown["Datasets"] == "2"
    assert shown["Datasets breaching SLA"] == "0"
    assert set(table_with(at, "partition_key")["dataset"]) == {"orders", "order_lines"}
    assert set(at.selectbox(key="dq_drill_dataset").options) <= {"orders", "order_lines"}


def test_date_range_filter(seeded_lake) -> None:
    at = run_app()
    day = dt.date.fromisoformat(seeded_lake.partitions[-3])
    at.date_input(key="dq_dates").set_value((day, day)).run()
    assert not at.exception
    parts = table_with(at, "partition_key")
    assert set(parts["partition_key"]) == {day.isoformat(), "__all__"}


def test_drill_down_shows_quarantined_records(seeded_lake) -> None:
    spike_day = seeded_lake.partitions[-6]  # orders quarantined 60 records that day
    at = run_app()
    at.selectbox(key="dq_drill_dataset").set_value("orders").run()
    at.selectbox(key="dq_drill_partition").set_value(spike_day).run()
    assert not at.exception
    records = table_with(at, "raw_record")
    assert len(records) == 60
    assert records["source_file"].str.contains(f"date={spike_day}").all()
    reasons = {reason for rs in records["reasons"] for reason in rs}
    assert "order_id: required value is missing" in reasons
    # PII of the orders contract is masked in the original record, the rest is kept.
    first = json.loads(records.iloc[0]["raw_record"])
    assert first["ip_address"] == components.MASK
    assert first["billing_address"]["street"] == components.MASK
    assert first["billing_address"]["city"] == "Berlin"


def test_drill_down_reads_only_the_latest_run(seeded_lake) -> None:
    dataset, partition = seeded_lake.rerun  # an older run of it quarantined 5 records
    at = run_app()
    at.selectbox(key="dq_drill_dataset").set_value(dataset).run()
    at.selectbox(key="dq_drill_partition").set_value(partition).run()
    assert len(table_with(at, "raw_record")) == 3
    parts = table_with(at, "partition_key")
    row = parts[(parts["dataset"] == dataset) & (parts["partition_key"] == partition)]
    assert row["quarantined"].tolist() == [3]


def test_conservation_break_is_flagged(seeded_lake, lake_writer: duckdb.DuckDBPyConnection) -> None:
    partition = seeded_lake.partitions[-1]
    lake_writer.execute(
        """insert into ops.ingest_runs values ('run-broken', 'inventory_snapshots', ?, 1,
           900, 880, 10, 0, null, now() - interval 1 minute, now())""",
        [partition],
    )
    at = run_app()
    assert any("Conservation broken" in w.value for w in at.warning)
    parts = table_with(at, "partition_key")
    assert not parts.iloc[0]["conserved"]  # breaks are listed first
    broken = parts[~parts["conserved"]]
    assert broken[["dataset", "partition_key"]].values.tolist() == [
        ["inventory_snapshots", partition]
    ]


def test_missing_lake_shows_hint(lake_home: Path) -> None:
    at = run_app()
    assert not at.error
    assert any("make demo" in info.value for info in at.info)


def test_lake_without_ops_tables_shows_hint(lake_home: Path) -> None:
    connect().close()  # a writer creates the lake and its schemas, but nothing ingested yet
    at = run_app()
    assert any("make demo" in info.value for info in at.info)


def test_empty_ops_tables_show_hint(lake_writer: duckdb.DuckDBPyConnection) -> None:
    at = run_app()
    assert any("make demo" in info.value for info in at.info)


def test_lake_created_after_first_visit_is_picked_up(
    lake_home: Path, seeded_lake_factory, monkeypatch
) -> None:
    monkeypatch.setattr(data, "REFRESH_SECONDS", 0)  # production waits up to a minute
    at = run_app()
    assert any("make demo" in info.value for info in at.info)
    seeded_lake_factory()
    at.run()  # the lake has a snapshot now: the cached "nothing there" results are dropped
    assert not at.exception and not at.info
    assert metrics(at)["Datasets"] == "7"


def test_cached_results_last_until_the_lake_has_a_new_snapshot(
    seeded_lake, lake_writer: duckdb.DuckDBPyConnection, monkeypatch
) -> None:
    at = run_app()
    assert not any("Conservation broken" in w.value for w in at.warning)
    at.run()
    assert not data.drop_stale_results(), "no new snapshot: the cached results stand"
    lake_writer.execute(
        """insert into ops.ingest_runs values ('run-late', 'inventory_snapshots', ?, 1,
           900, 880, 10, 0, null, now() - interval 1 minute, now())""",
        [seeded_lake.partitions[-1]],
    )
    at.run()  # a new snapshot within the minute after the last drop: still the cached view
    assert not any("Conservation broken" in w.value for w in at.warning)
    monkeypatch.setattr(data, "REFRESH_SECONDS", 0)
    at.run()  # the minute is over: the new snapshot is read
    assert any("Conservation broken" in w.value for w in at.warning)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            '{"ip_address": "1.2.3.4", "billing_address": {"street": "x", "city": "y"}}',
            {"ip_address": "***", "billing_address": {"street": "***", "city": "y"}},
        ),
        ('{"lines": [{"ip_address": "1.2.3.4"}]}', {"lines": [{"ip_address": "***"}]}),
    ],
)
def test_mask_pii_json(raw: str, expected: dict) -> None:
    pii = ["ip_address", "billing_address_street"]
    assert json.loads(components.mask_pii(raw, pii)) == expected


def test_mask_pii_leaves_records_without_pii_alone() -> None:
    assert (
        components.mask_pii("2026-08-20,WH-MUC,SKU-1,-3", [], ["date", "wh", "sku", "on_hand"])
        == "2026-08-20,WH-MUC,SKU-1,-3"
    )
    assert components.mask_pii('{"a": 1}', []) == '{"a": 1}'
    assert components.mask_pii(None, ["a"]) is None


def test_mask_pii_masks_csv_records_by_their_header() -> None:
    header = ["customer_id", "customer_unique_id", "customer_zip_code_prefix", "customer_city"]
    pii = ["customer_zip_code_prefix", "customer_city"]
    raw = 'c1,u1,01310,"sao paulo, centro"'
    assert components.mask_pii(raw, pii, header) == "c1,u1,***,***"
    assert components.mask_pii("c1;u1;01310;rio", pii, header, delimiter=";") == "c1;u1;***;***"


@pytest.mark.parametrize(
    ("raw", "header"),
    [
        ("c1,u1,01310,sao paulo", None),  # no header known: the fields cannot be told apart
        ("c1,u1,01310", ["customer_id", "customer_zip_code_prefix", "x", "customer_city"]),
        ('{"ip_address": "1.2.3.4", "email": "jane@', None),  # truncated JSON
        ('["jane@example.org", "1.2.3.4"]', None),  # JSON, but not an object
    ],
)
def test_mask_pii_withholds_what_it_cannot_parse(raw: str, header: list[str] | None) -> None:
    pii = ["customer_zip_code_prefix", "customer_city", "ip_address", "email"]
    assert components.mask_pii(raw, pii, header) == components.UNPARSABLE


def test_mask_pii_withholds_personal_data_typed_into_other_fields() -> None:
    header = ["order_id", "note"]
    masked = components.mask_pii("ORD-1,mail jane.doe@gmail.com or +49 151 2345678", ["x"], header)
    assert masked.startswith("ORD-1,") and "jane" not in masked and "2345678" not in masked
    shown = components.mask_pii('{"note": "from 81.2.69.160", "n": 3}', ["x"])
    assert json.loads(shown) == {"note": "from <pii withheld>", "n": 3}


def test_formatting() -> None:
    assert components.fmt_count(1234567) == "1,234,567"
    assert components.fmt_rate(0.01234) == "1.23%"
    assert components.fmt_rate(float("nan")) == "—"
    assert components.fmt_hours(10.04) == "10.0 h"
    assert components.fmt_hours(72) == "3.0 d"
    assert components.fmt_hours(None) == "—"


def test_a_run_that_met_cpython_s_ast_race_is_run_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CPython 3.11.7's AST race (tests/auth_support.py) costs one rerun, not an empty page;
    any other compile error is left as it is."""
    from streamlit.runtime.scriptrunner import script_cache

    script = tmp_path / "page.py"
    script.write_text("import streamlit as st\nst.title('compiled')\n")
    compile_once = script_cache.ScriptCache.get_bytecode
    failures = [SystemError("AST constructor recursion depth mismatch (before=27, after=74)")]

    def racy(self: object, path: str) -> object:
        if failures:
            raise failures.pop()
        return compile_once(self, path)  # type: ignore[arg-type]

    monkeypatch.setattr(script_cache.ScriptCache, "get_bytecode", racy)
    at = AppTest.from_file(str(script)).run()
    assert [t.value for t in at.title] == ["compiled"]

    failures.append(SyntaxError("invalid syntax"))
    at = AppTest.from_file(str(script)).run()
    assert [t.value for t in at.title] == []  # a real compile error is not hidden by a rerun
