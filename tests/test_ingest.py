"""Ingestion: every received record lands or is quarantined with its reason; re-runs replace."""

from __future__ import annotations

from pathlib import Path

import landing_factory as lf
import pytest

from ordertower import lake
from ordertower.lake import connect
from pipelines.ingest import carriers
from pipelines.ingest.runner import ingest_source, landed_partitions
from pipelines.ingest.sources import SOURCES, SOURCES_BY_NAME


def _ingest_all(landing: Path, run_id: str = "run-1") -> dict:
    con = connect()
    try:
        results = {}
        for source in SOURCES:
            results.update(
                ingest_source(source, landed_partitions(source, landing), con, landing, run_id)
            )
        return results
    finally:
        con.close()


@pytest.fixture
def landing(lake_home: Path) -> Path:
    root = lake_home / "landing"
    lf.reference(root)
    lf.clean_day(root)
    return root


def _reasons(con, dataset: str) -> dict[int, list[str]]:
    rows = con.execute(
        "select record_no, reasons from quarantine.rejected_records where dataset = ? "
        "order by record_no",
        [dataset],
    ).fetchall()
    return {r[0]: list(r[1]) for r in rows}


def test_clean_files_land_completely(landing: Path):
    results = _ingest_all(landing)
    assert {name: r.quarantined for name, r in results.items() if r.quarantined} == {}
    assert results["orders"].landed == 3
    assert results["order_lines"].landed == 3
    assert results["carrier_events"].landed == 5
    assert all(r.conserved for r in results.values())
    con = connect(read_only=True)
    # mixed offsets converted to UTC
    ts = con.execute("select order_ts from raw.orders limit 1").fetchone()[0]
    assert ts.utcoffset().total_seconds() == 0 and ts.hour == 8
    assert (
        con.execute(
            "select count(*) from raw.order_lines where order_id = 'ORD-00000001'"
        ).fetchone()[0]
        == 1
    )


def test_broken_records_are_quarantined_with_reasons(landing: Path):
    lf.broken_day(landing)
    results = _ingest_all(landing)
    for r in results.values():
        assert r.conserved, r.dataset
        for stats in r.partitions.values():
            assert stats.received == stats.landed + stats.quarantined
    assert results["orders"].partitions["2026-08-21"].received == 11
    assert results["orders"].partitions["2026-08-21"].quarantined == 8
    con = connect(read_only=True)
    orders = _reasons(con, "orders")
    assert "duplicate key" in orders[2][0]
    assert orders[3] == ["order_id: required value is missing"]
    assert "is not one of" in orders[4][0]
    assert "outside [0, 100000]" in orders[5][0]
    assert "no time zone offset" in orders[6][0]
    assert "not an ISO-8601 timestamp" in orders[8][0]
    assert orders[10][0].startswith("invalid JSON")
    assert "truncated last line" in orders[11][0]
    lines = _reasons(con, "order_lines")
    assert "quantity: -1 is outside [1, 500]" in lines[9]
    assert any("parent orders record rejected" in r for r in lines[4])
    raw = con.execute(
        "select raw_record from quarantine.rejected_records where dataset='orders' "
        "and record_no = 4"
    ).fetchone()[0]
    assert '"teleshopping"' in raw  # the original record is kept
    assert "wrong delimiter" in _reasons(con, "cancellations")[2][0]
    assert "truncated line" in _reasons(con, "chargebacks")[3][0]
    assert _reasons(con, "inventory_snapshots")[2] == [
        "reserved: column missing from the file header"
    ]
    # the good other-time-zone order landed
    assert (
        con.execute("select count(*) from raw.orders where order_id = 'ORD-00000015'").fetchone()[0]
        == 1
    )


def test_rematerialising_a_partition_replaces_it(landing: Path):
    lf.broken_day(landing)
    _ingest_all(landing, "run-1")
    con = connect(read_only=True)
    tables = [
        "raw.orders",
        "raw.order_lines",
        "raw.carrier_events",
        "raw.inventory_snapshots",
        "quarantine.rejected_records",
        "raw.warehouses",
    ]
    before = {t: con.execute(f"select count(*) from {t}").fetchone()[0] for t in tables}
    con.close()
    _ingest_all(landing, "run-2")
    source = SOURCES_BY_NAME["orders"]
    c2 = connect()
    ingest_source(source, ["2026-08-21"], c2, landing, "run-3")
    after = {t: c2.execute(f"select count(*) from {t}").fetchone()[0] for t in tables}
    assert after == before
    status = c2.execute(
        "select run_id from ops.ingest_status where dataset = 'orders' "
        "and partition_key = '2026-08-21'"
    ).fetchone()[0]
    assert status == "run-3"


def test_unknown_carrier_codes_are_kept_and_flagged(landing: Path):
    results = _ingest_all(landing)
    assert results["carrier_events"].unknown_codes == 1
    con = connect(read_only=True)
    row = con.execute(
        "select event_code, carrier_status_code, is_unmapped, mode from raw.carrier_events "
        "where carrier_status_code = 'XX'"
    ).fetchone()
    assert row == ("UNKNOWN", "XX", True, "rail")
    exc = con.execute(
        "select event_code, exception_reason from raw.carrier_events where event_id = 'm2'"
    ).fetchone()
    assert exc == ("EXCEPTION", "ADDRESS_ISSUE")


def test_rail_local_times_use_the_station_time_zone():
    # summer (CEST, +02:00) and winter (CET, +01:00) in Germany; Portugal is an hour behind
    assert carriers.rail_local_to_utc("20.08.2026 14:30", "DEHBF") == "2026-08-20T14:30:00+02:00"
    assert carriers.rail_local_to_utc("20.12.2026 14:30", "DEHBF") == "2026-12-20T14:30:00+01:00"
    assert carriers.rail_local_to_utc("20.12.2026 14:30", "PTLIS") == "2026-12-20T14:30:00+00:00"
    assert (
        carriers.rail_local_to_utc("2026-12-20", "DEHBF") == "2026-12-20"
    )  # left for the contract


def test_every_carrier_feed_format_has_a_normaliser():
    assert set(carriers.mappings()) == set(carriers.FEED_FORMATS) == set(carriers.NORMALISERS)


def test_worker_processes_land_exactly_what_one_process_lands(landing: Path, monkeypatch):
    from pipelines.ingest import runner

    lf.broken_day(landing)
    lf.clean_day(landing, day="2026-08-22", n_orders=5)
    source = SOURCES_BY_NAME["orders"]
    monkeypatch.setattr(runner, "BATCH_RECORDS", 1)  # one partition per batch: three batches
    keys = landed_partitions(source, landing)
    con = connect()
    try:
        serial = ingest_source(source, keys, con, landing, "serial", workers=1)
        snapshot = con.execute(
            "select order_id, _partition_key from raw.orders order by all"
        ).fetchall()
        parallel = ingest_source(source, keys, con, landing, "parallel", workers=2)
        again = con.execute(
            "select order_id, _partition_key from raw.orders order by all"
        ).fetchall()
        quarantined = con.execute(
            "select count(*) from quarantine.rejected_records where run_id = 'parallel'"
        ).fetchone()[0]
    finally:
        con.close()
    assert again == snapshot
    for name in source.datasets:
        assert parallel[name].partitions.keys() == serial[name].partitions.keys()
        assert (parallel[name].received, parallel[name].landed, parallel[name].quarantined) == (
            serial[name].received,
            serial[name].landed,
            serial[name].quarantined,
        )
        assert parallel[name].rules.keys() == serial[name].rules.keys()
    assert quarantined == serial["orders"].quarantined + serial["order_lines"].quarantined


def test_worker_processes_serve_the_next_source_unless_the_settings_changed(
    landing: Path, monkeypatch
):
    from pipelines.ingest import runner

    lf.clean_day(landing, day="2026-08-22", n_orders=5)
    lf.clean_day(landing, day="2026-08-23", n_orders=5)
    lf.clean_day(landing, day="2026-08-24", n_orders=5)
    monkeypatch.setattr(runner, "MIN_SPLIT_BYTES", 1)  # small days: still two batches a worker
    keys = landed_partitions(SOURCES_BY_NAME["orders"], landing)
    batches = runner._batches(SOURCES_BY_NAME["orders"], landing, keys, workers=2)
    assert len(batches) > 2 and sum(batches, []) == keys  # by size: about two a worker
    assert runner._batches(SOURCES_BY_NAME["orders"], landing, keys, workers=1) == [keys]
    con = connect()
    try:
        ingest_source(SOURCES_BY_NAME["orders"], keys, con, landing, "first", workers=2)
        pool = runner._pool
        assert pool is not None
        ingest_source(SOURCES_BY_NAME["shipments"], keys, con, landing, "second", workers=2)
        assert runner._pool is pool  # started once for both sources
        monkeypatch.setenv("ORDERTOWER_TYPED_READS", "0")  # what a worker reads when it starts
        ingest_source(SOURCES_BY_NAME["orders"], keys, con, landing, "third", workers=2)
        assert runner._pool is not pool
        landed = con.execute("select count(*) from raw.orders").fetchone()[0]
    finally:
        con.close()
        runner.shutdown_workers()
    assert runner._pool is None
    assert landed == 15


def _running(pid: int) -> bool:
    """The process exists and has not ended (a zombie has ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def test_worker_processes_end_when_the_process_that_started_them_is_killed():
    import subprocess
    import sys
    import time

    script = (
        "import os, time\n"
        "from pipelines.ingest import runner\n"
        "pool = runner._workers_pool(2)\n"
        "print(' '.join(str(p) for p in {pool.submit(os.getpid).result() for _ in range(4)}),"
        " flush=True)\n"
        "time.sleep(600)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    try:
        workers = [int(pid) for pid in proc.stdout.readline().split()]
        assert workers and all(_running(pid) for pid in workers)
    finally:
        proc.kill()  # SIGKILL: no atexit hook stops the workers
        proc.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(_running(pid) for pid in workers):
        time.sleep(0.2)
    assert not any(_running(pid) for pid in workers)


# ------------------------------------------------------------------------------ isolation


def test_a_record_that_breaks_a_normaliser_is_quarantined_alone(landing: Path, monkeypatch):
    real = carriers.NORMALISERS["parcel_webhook_json"]

    def fragile(record, carrier_id, codes):
        if record.get("msg_id") == "m2":
            raise KeyError("a bug met an odd record")
        return real(record, carrier_id, codes)

    monkeypatch.setitem(carriers.NORMALISERS, "parcel_webhook_json", fragile)
    # the record-by-record normaliser (typed reads normalise these webhooks in SQL)
    monkeypatch.setenv("ORDERTOWER_TYPED_READS", "0")
    con = connect()
    try:
        for name in ("carriers", "carrier_events"):
            source = SOURCES_BY_NAME[name]
            result = ingest_source(
                source, landed_partitions(source, landing), con, landing, "r", workers=1
            )
    finally:
        con.close()
    events = result["carrier_events"]
    assert (events.received, events.landed, events.quarantined) == (5, 4, 1)
    con = connect(read_only=True)
    reasons = _reasons(con, "carrier_events")
    assert list(reasons.values())[0][0].startswith("record: could not be normalised (KeyError")


def test_enforcement_isolates_the_records_it_fails_on(monkeypatch):
    import pandas as pd

    from pipelines.contracts import enforce as enforce_mod
    from pipelines.contracts.model import load_contract

    real = enforce_mod._enforce

    def fragile(frame, contract, missing, received_at):
        if (frame["order_id"] == "ORD-POISON").any():
            raise TypeError("an odd value no rule can read")
        return real(frame, contract, missing, received_at)

    monkeypatch.setattr(enforce_mod, "_enforce", fragile)
    rows = [
        {
            "order_id": f"ORD-{i:08d}",
            "line_no": 1,
            "sku_id": "SKU-000001",
            "quantity": 1,
            "unit_price": 9.5,
            "discount": 0.0,
        }
        for i in range(7)
    ]
    rows[4]["order_id"] = "ORD-POISON"
    result = enforce_mod.enforce(pd.DataFrame(rows), load_contract("order_lines"))
    assert list(result.reasons) == [4]
    assert "could not be checked against the contract (TypeError" in result.reasons[4][0]
    assert len(result.valid) == 6
    assert str(result.typed["quantity"].dtype) == "Int64"  # the other records keep their types


def test_a_batch_file_event_counts_as_received_at_the_end_of_its_day(landing: Path):
    day = "2026-08-22"
    lf.write_jsonl(
        landing / f"carriers/SWIFTPARCEL/date={day}/webhooks.jsonl",
        [
            {
                "msg_id": f"t{i}",
                "carrier": "SWIFTPARCEL",
                "tracking_number": "SP1",
                "checkpoint": {"tag": "InTransit", "checkpoint_time": when},
            }
            for i, when in enumerate(
                ["2026-08-22T23:30:00Z", "2026-08-23T00:45:00Z", "2026-08-23T02:00:00Z"]
            )
        ],
    )
    con = connect()
    try:
        for name in ("carriers", "carrier_events"):
            source = SOURCES_BY_NAME[name]
            ingest_source(source, landed_partitions(source, landing), con, landing, "r", workers=1)
    finally:
        con.close()
    con = connect(read_only=True)
    landed = {
        r[0]
        for r in con.execute(
            "select event_id from raw.carrier_events where _partition_key = ?", [day]
        ).fetchall()
    }
    assert landed == {"t0", "t1"}  # within an hour of the day's end
    reasons = _reasons(con, "carrier_events")
    assert reasons[3][0].startswith("event_ts: '2026-08-23T02:00:00+00:00' is more than 1 h after")
    rules = con.execute(
        "select success, unexpected_count from ops.contract_results "
        "where rule = 'event_ts.not_after_receipt' and partition_key = ?",
        [day],
    ).fetchall()
    assert rules == [(False, 1)]


def test_a_rail_stop_whose_remark_says_lost_is_a_lost_consignment():
    row = {
        "consignment_no": "C1",
        "status_code": "ST",
        "station_code": "DEHBF",
        "station_name": "Hamburg Hbf",
        "local_time": "20.08.2026 14:30",
        "train_no": "TAC 10001",
    }
    lost, late, damaged, departed = carriers.normalise(
        "rail_csv",
        "rail-x",
        [
            {**row, "remarks": "Sendung nicht auffindbar"},
            {**row, "remarks": "Verspätung 3,5 h"},
            {**row, "status_code": "BS", "remarks": "Beschädigung festgestellt"},
            {**row, "status_code": "AB", "remarks": "Sendung nicht auffindbar"},
        ],
    )
    assert (lost["event_code"], lost["exception_reason"]) == ("EXCEPTION", "LOST")
    assert lost["carrier_status_text"] == "Sendung nicht auffindbar"
    assert (late["event_code"], late["exception_reason"]) == ("EXCEPTION", "DELAY")
    assert damaged["exception_reason"] == "DAMAGED"
    # a remark refines an exception only: a departure stays a departure
    assert (departed["event_code"], departed["exception_reason"]) == ("DEPARTED", None)


def test_rail_times_are_read_as_strptime_reads_them() -> None:
    """The sliced fast path of rail local times (pipelines/ingest/carriers.py) accepts and
    rejects exactly what ``strptime("%d.%m.%Y %H:%M")`` does, on random and damaged text."""
    import random
    from datetime import datetime

    from pipelines.ingest.carriers import _rail_naive

    def read(parse, text):  # type: ignore[no-untyped-def]
        try:
            return parse(text)
        except ValueError:
            return "rejected"

    rng = random.Random(7)
    damage = "0123456789.: ٠١²-T+ "
    texts = ["01.02.2026 10:05", "1.2.2026 5:07", "٠١.٠٢.٢٠٢٦ ١٠:٠٥", "29.02.2025 00:00"]
    for _ in range(20_000):
        chars = list(
            f"{rng.randint(0, 35):02d}.{rng.randint(0, 14):02d}.{rng.randint(0, 2100):04d} "
            f"{rng.randint(0, 25):02d}:{rng.randint(0, 61):02d}"
        )
        for _ in range(rng.randint(0, 2)):
            chars[rng.randrange(len(chars))] = rng.choice(damage)
        texts.append("".join(chars))
    strptime = lambda t: datetime.strptime(t, "%d.%m.%Y %H:%M")  # noqa: E731
    assert [read(_rail_naive, t) for t in texts] == [read(strptime, t) for t in texts]


def test_ops_tables_change_only_what_is_missing(lake_writer):
    """Every ingestion step ensures the ops tables: a lake that has them all is only read; an
    older lake gains a column added since, and a dropped view comes back."""
    from pipelines.ingest import ops

    statements: list[str] = []

    class Recording:
        def execute(self, sql, *args):
            statements.append(" ".join(sql.split()).lower())
            return lake_writer.execute(sql, *args)

    ops.ensure_ops_tables(Recording())
    assert not [s for s in statements if s.startswith(("create", "alter"))], statements

    lake_writer.execute("alter table ops.contract_results drop column severity")
    lake_writer.execute("drop view ops.ingest_status")
    statements.clear()
    ops.ensure_ops_tables(Recording())
    changed = [s for s in statements if s.startswith(("create", "alter"))]
    assert len(changed) == 2, changed
    assert "severity" in lake.columns_of(lake_writer, "ops", "contract_results")
    assert lake.table_exists(lake_writer, "ops", "ingest_status")
    assert not lake.table_exists(lake_writer, "ops", "no_such_table")


def test_the_dataset_registry_is_written_only_when_a_contract_changed(landing: Path):
    """ops.datasets follows the contracts; a step whose contracts it already holds writes
    nothing (no catalog transaction, no lake snapshot per step)."""
    from dataclasses import replace

    from pipelines.contracts.model import load_contract
    from pipelines.ingest.runner import register_datasets

    _ingest_all(landing)
    source = SOURCES_BY_NAME["orders"]
    contracts = {name: load_contract(name) for name in source.datasets}
    con = connect()
    try:
        before = lake.current_snapshot_id(con)
        register_datasets(con, source, contracts)
        assert lake.current_snapshot_id(con) == before
        # a steward changes the contract's owner: the registry follows, in one snapshot
        changed = {**contracts, "orders": replace(contracts["orders"], owner="new@example.com")}
        assert contracts["orders"].owner != "new@example.com"
        register_datasets(con, source, changed)
        assert lake.current_snapshot_id(con) == before + 1
        rows = con.execute(
            "select dataset, owner from ops.datasets where dataset in ('orders', 'order_lines') "
            "order by dataset"
        ).fetchall()
        assert rows == [
            ("order_lines", contracts["order_lines"].owner),
            ("orders", "new@example.com"),
        ]
    finally:
        con.close()


def test_a_batch_lands_with_its_nested_datasets_or_not_at_all(landing: Path, monkeypatch):
    """Orders and their lines are one batch's write: when the lines cannot be written, the
    orders of the batch are not left in the lake without them, and the error is raised."""
    import pipelines.ingest.runner as runner

    source = SOURCES_BY_NAME["orders"]
    keys = landed_partitions(source, landing)
    _ingest_all(landing, "run-1")
    con = connect()
    before = {
        t: con.execute(f"select count(*), max(_run_id) from {t}").fetchone()
        for t in ("raw.orders", "raw.order_lines")
    }
    write = runner._write

    def lines_fail(con, contract, *args, **kwargs):
        if contract.name == "order_lines":
            raise OSError("disk full")
        return write(con, contract, *args, **kwargs)

    monkeypatch.setattr(runner, "_write", lines_fail)
    with pytest.raises(OSError, match="disk full"):
        ingest_source(source, keys, con, landing, "run-2")
    after = {
        t: con.execute(f"select count(*), max(_run_id) from {t}").fetchone()
        for t in ("raw.orders", "raw.order_lines")
    }
    assert after == before  # the run-1 rows, neither deleted nor replaced by run-2's orders
    runs = con.execute("select count(*) from ops.ingest_runs where run_id = 'run-2'").fetchone()
    assert runs[0] == 0
    con.close()
