"""Olist, a second source system: the real marketplace extract through the same contracts,
quarantine and bookkeeping as every other source, into the same lake, up to dbt staging.

The extract is real data under CC BY-NC-SA and never part of the repository: tests that need it
skip with the reason when ``../shared/datasets`` is absent (a fresh clone), and fail instead of
skipping under ``CI=true``, where the folder must be there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ordertower.lake import connect
from ordertower.settings import DBT_PROJECT_DIR, get_settings
from pipelines.cli import main
from pipelines.ingest import olist
from pipelines.ingest.ops import UNPARTITIONED
from pipelines.ingest.runner import DatasetResult, ingest_source
from pipelines.ingest.sources import SOURCES

OLIST_SOURCES = [s for s in SOURCES if s.name.startswith("olist_")]
SAO_PAULO = ZoneInfo("America/Sao_Paulo")
DBT = str(Path(sys.executable).parent / "dbt")


def _olist_dir() -> Path:
    """The extract, or skip (fail under CI) saying where it was looked for and why it is absent."""
    folder = olist.default_source_dir()
    if all((folder / name).is_file() for name in olist.OLIST_FILES):
        return folder
    reason = (
        f"the Olist extract is not at {folder}: it is real data (CC BY-NC-SA) kept beside the "
        "repository in ../shared/datasets, never in it"
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; under CI=true the real-data tests must run")
    pytest.skip(reason)


def _ingest(landing: Path, run_id: str = "olist-run") -> dict[str, DatasetResult]:
    con = connect()
    try:
        results: dict[str, DatasetResult] = {}
        for source in OLIST_SOURCES:
            results.update(ingest_source(source, [UNPARTITIONED], con, landing, run_id))
        return results
    finally:
        con.close()


# ------------------------------------------------------------------------------ the adapter


def test_land_without_the_extract_fails_with_one_clear_line(
    lake_home: Path, tmp_path: Path, capsys
):
    assert main(["olist", "land", "--from", str(tmp_path / "nowhere")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "no Olist data at" in err and "--from DIR" in err
    incomplete = tmp_path / "incomplete"
    incomplete.mkdir()
    (incomplete / "orders.csv").write_text("order_id\n")
    assert main(["olist", "land", "--from", str(incomplete)]) == 1
    err = capsys.readouterr().err
    assert "lacks order_items.csv" in err and "nothing landed" in err
    assert not (lake_home / "landing" / "olist").exists()


def test_land_copies_the_files_unchanged_and_idempotently(lake_home: Path, capsys):
    source = _olist_dir()
    first = olist.land()  # the default folder, beside the checkout
    target = lake_home / "landing" / "olist"
    assert first.target_dir == target and sorted(first.copied) == sorted(olist.OLIST_FILES)
    for name in olist.OLIST_FILES:
        assert (target / name).read_bytes() == (source / name).read_bytes()
    mtimes = {p.name: p.stat().st_mtime_ns for p in target.iterdir()}
    assert main(["olist", "land"]) == 0
    assert "0 file(s) copied, 5 unchanged" in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in target.iterdir()} == mtimes
    (target / "orders.csv").write_text("damaged\n")  # a changed file is copied again
    assert olist.land().copied == ["orders.csv"]
    assert (target / "orders.csv").read_bytes() == (source / "orders.csv").read_bytes()


# ----------------------------------------------------------------- ingestion without the data


def test_an_absent_olist_landing_lands_nothing_and_says_so(lake_home: Path):
    """Never brought in (no olist/ folder): nothing was expected, so a note, not a warning."""
    results = _ingest(lake_home / "landing")
    assert set(results) == {s.dataset for s in OLIST_SOURCES}
    for result in results.values():
        assert (result.received, result.landed, result.quarantined) == (0, 0, 0)
        assert result.conserved
        assert result.warnings == []
        assert any("no such file in the landing zone" in n for n in result.notes)
    con = connect(read_only=True)
    try:
        runs = con.execute(
            "select dataset, files, received from ops.ingest_runs where dataset like 'olist_%'"
        ).fetchall()
        assert len(runs) == len(OLIST_SOURCES) and all(r[1:] == (0, 0) for r in runs)
        assert con.execute("select count(*) from raw.olist_orders").fetchone()[0] == 0
    finally:
        con.close()


def test_an_olist_extract_missing_a_file_warns(lake_home: Path):
    """Brought in, but a file is missing from it: that one lands nothing, with a warning."""
    landing = lake_home / "landing"
    (landing / "olist").mkdir(parents=True)
    results = _ingest(landing)
    for result in results.values():
        assert result.received == 0 and result.notes == []
        assert any("no such file in the landing zone" in w for w in result.warnings)


# ------------------------------------------------------------------- a deliberately broken copy


def _head(path: Path, lines: int) -> str:
    with open(path, encoding="utf-8") as fh:
        return "".join(next(fh) for _ in range(lines))


def test_a_broken_copy_is_quarantined_with_reasons(lake_home: Path):
    source = _olist_dir()
    landing = lake_home / "landing"
    target = landing / "olist"
    target.mkdir(parents=True)
    for name in olist.OLIST_FILES:
        (target / name).write_text(_head(source / name, 41), encoding="utf-8")
    # orders: a bad timestamp on line 3, the last line cut short (no newline, as a broken transfer)
    rows = (target / "orders.csv").read_text().splitlines(keepends=True)
    fields = rows[2].split(",")
    fields[3] = "2017-02-30 25:61:00"
    rows[2] = ",".join(fields)
    rows[-1] = rows[-1][:50]
    (target / "orders.csv").write_text("".join(rows))
    # customers: a required column missing from the file
    lines = [ln.split(",") for ln in (target / "customers.csv").read_text().splitlines()]
    (target / "customers.csv").write_text("\n".join(",".join(f[:1] + f[2:]) for f in lines) + "\n")
    # order items written with Windows line endings land all the same
    items = (target / "order_items.csv").read_text()
    (target / "order_items.csv").write_bytes(items.replace("\n", "\r\n").encode())

    results = _ingest(landing)

    assert all(r.conserved for r in results.values())
    orders = results["olist_orders"]
    assert (orders.received, orders.landed, orders.quarantined) == (40, 38, 2)
    customers = results["olist_customers"]
    assert (customers.received, customers.quarantined) == (40, 40)
    assert results["olist_order_items"].landed == 40
    assert results["olist_products"].landed == 40
    con = connect(read_only=True)
    try:
        reasons = dict(
            con.execute(
                "select record_no, reasons from quarantine.rejected_records "
                "where dataset = 'olist_orders' order by record_no"
            ).fetchall()
        )
        assert reasons[3] == [
            "order_purchase_timestamp: '2017-02-30 25:61:00' is not an ISO-8601 timestamp"
        ]
        assert "(truncated line)" in reasons[41][0]
        customer_reasons = con.execute(
            "select distinct reason from quarantine.rejected_records where dataset = 'olist_customers'"
        ).fetchall()
        assert customer_reasons == [("customer_unique_id: column missing from the file header",)]
        # float-formatted whole numbers ("51.0") are integers in the lake
        weights = con.execute("select typeof(product_weight_g) from raw.olist_products limit 1")
        assert weights.fetchone()[0] == "BIGINT"
    finally:
        con.close()


# ----------------------------------------------------------- the real subset, landed once


@dataclass
class OlistLake:
    home: Path
    results: dict[str, DatasetResult]


@pytest.fixture(scope="module")
def olist_lake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OlistLake]:
    """The real extract landed and ingested once into a temporary lake for this module."""
    _olist_dir()
    home = tmp_path_factory.mktemp("olist_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ORDERTOWER_HOME", str(home))
        for var in ("ORDERTOWER_CATALOG", "ORDERTOWER_CATALOG_DSN", "ORDERTOWER_DATA_PATH"):
            mp.delenv(var, raising=False)
        olist.land()
        yield OlistLake(home, _ingest(get_settings().landing_dir))


def test_the_real_subset_lands_every_record(olist_lake: OlistLake):
    results = olist_lake.results
    expected = {
        "olist_orders": 10_000,
        "olist_order_items": 11_252,
        "olist_customers": 10_000,
        "olist_products": 6_123,
        "olist_product_categories": 71,
    }
    assert {name: r.received for name, r in results.items()} == expected
    for result in results.values():
        assert result.received == result.landed + result.quarantined
        assert result.quarantined == 0, result.top_reasons  # every contract rule holds on it
    # a known anomaly is reported by a warning rule, never quarantined
    anomaly = results["olist_orders"].rules["delivered_after_carrier_handover"]
    assert anomaly["severity"] == "warning" and anomaly["unexpected_count"] == 5
    con = connect(read_only=True)
    try:
        runs = dict(
            con.execute(
                "select dataset, received from ops.ingest_status where dataset like 'olist_%'"
            ).fetchall()
        )
        assert runs == expected
        assert con.execute("select count(*) from raw.olist_orders").fetchone()[0] == 10_000
    finally:
        con.close()


def test_sao_paulo_times_become_utc(olist_lake: OlistLake):
    con = connect(read_only=True)
    try:
        stored = dict(
            con.execute(
                "select order_id, order_purchase_timestamp from raw.olist_orders where order_id in "
                "('e481f51cbdc54678b7cc49136f2d6af7', '949d5b44dbf5de918fe9c16f97b45f8a')"
            ).fetchall()
        )
    finally:
        con.close()
    # 2 October 2017 is standard time (UTC-3), 18 November is daylight time (UTC-2): Brazil's
    # 2017/18 daylight time ran from 15 October 2017 to 18 February 2018
    october = datetime(2017, 10, 2, 10, 56, 33, tzinfo=SAO_PAULO)
    november = datetime(2017, 11, 18, 19, 28, 6, tzinfo=SAO_PAULO)
    assert october.utcoffset() == timedelta(hours=-3)
    assert november.utcoffset() == timedelta(hours=-2)
    assert stored["e481f51cbdc54678b7cc49136f2d6af7"] == datetime(
        2017, 10, 2, 13, 56, 33, tzinfo=UTC
    )
    assert stored["949d5b44dbf5de918fe9c16f97b45f8a"] == november.astimezone(UTC)
    assert stored["949d5b44dbf5de918fe9c16f97b45f8a"].hour == 21


def test_staging_models_build_on_the_real_subset(olist_lake: OlistLake, tmp_path: Path):
    """dbt build of staging/olist (models, PK/FK/enum tests, unit tests) and the PII guard."""
    result = subprocess.run(
        [
            DBT,
            "build",
            "--select",
            "staging.olist",
            "assert_no_pii_columns_in_staging",
            "--project-dir",
            str(DBT_PROJECT_DIR),
            "--profiles-dir",
            str(DBT_PROJECT_DIR),
            # not dbt/target: the Dagster code location reads its manifest from there
            "--target-path",
            str(tmp_path / "target"),
            "--log-path",
            str(tmp_path / "logs"),
        ],
        env={**os.environ, **get_settings().dbt_env()},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    run = json.loads((tmp_path / "target" / "run_results.json").read_text())
    statuses = {r["unique_id"]: r["status"] for r in run["results"]}
    assert len(statuses) > 25 and set(statuses.values()) <= {"pass", "success"}, statuses
    # each model's required columns (not_null_columns) and value rules (column_rules) were tested
    assert {
        f"test.ordertower.{kind}_stg_olist__{m}"
        for kind in ("not_null", "rules")
        for m in ("orders", "order_items", "customers")
    } <= {uid.rsplit(".", 1)[0] for uid in statuses}, sorted(statuses)
    con = connect(read_only=True)
    try:
        count = "select count(*) from staging.{}"
        assert con.execute(count.format("stg_olist__orders")).fetchone()[0] == 10_000
        assert con.execute(count.format("stg_olist__order_items")).fetchone()[0] == 11_252
        columns = {r[0] for r in con.execute("describe staging.stg_olist__customers").fetchall()}
        assert columns == {
            "customer_id",
            "customer_unique_id",
            "customer_state",
            "partition_key",
            "ingested_at",
        }
        ordered_at, promised = con.execute(
            "select ordered_at, promised_delivery_date from staging.stg_olist__orders "
            "where order_id = 'e481f51cbdc54678b7cc49136f2d6af7'"
        ).fetchone()
        assert ordered_at == datetime(2017, 10, 2, 13, 56, 33, tzinfo=UTC)
        assert promised.isoformat() == "2017-10-18"
        categories = dict(
            con.execute(
                "select category_pt, category from staging.stg_olist__products "
                "where category_pt in ('beleza_saude', 'pc_gamer')"
            ).fetchall()
        )
        assert categories == {"beleza_saude": "health_beauty", "pc_gamer": "pc_gamer"}
    finally:
        con.close()
