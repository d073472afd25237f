"""Shared pytest fixtures: an isolated lake per test and a realistic ingestion history.

Every test that touches the lake gets its own ``ORDERTOWER_HOME`` under ``tmp_path`` so tests
never read or damage the developer's ``.ordertower/`` and can run in parallel.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from absl import logging as absl_logging

from ordertower.lake import connect
from pipelines.ingest.ops import UNPARTITIONED, ensure_ops_tables

# absl (OR-Tools' logging) binds its handler to sys.stderr when it is first imported: under pytest
# that is the run's capture file. When a library then closes the logging handlers (as
# logging.config.dictConfig does) while a test's capsys has replaced sys.stderr, absl's handler
# closes that capture file, and every later test of the worker fails with "I/O operation on closed
# file" (test_dispatch, then test_cli's demo path). The real stderr is a stream it never closes.
absl_logging.get_absl_handler().python_handler.stream = sys.__stderr__


#: the clean-clone runs' figures (.ci/test_summary.py), newest last by name
_TEST_RUNS = Path(__file__).resolve().parent.parent / "bench" / "results"


def module_seconds() -> dict[str, float]:
    """Seconds each test module took in the newest recorded full run (``tests.test_x``: s)."""
    for path in sorted(_TEST_RUNS.glob("tests-*.json"), reverse=True):
        try:
            modules = json.loads(path.read_text()).get("modules") or {}
        except (OSError, ValueError):
            continue
        if isinstance(modules, dict) and modules:
            return {str(k): float(v) for k, v in modules.items()}
    return {}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Longest modules first (by the last recorded full run; new modules last), each module's
    tests in their own order. Under ``-n 2 --dist loadfile --no-loadscope-reorder`` each worker
    takes the next module when it is free, so the longest go first and the run ends with short
    ones on both workers, not one worker finishing a long module alone."""
    seconds = module_seconds()
    if not seconds:
        return

    def module(item: pytest.Item) -> str:
        return item.nodeid.split("::", 1)[0].removesuffix(".py").replace("/", ".")

    rank = {id(item): (-seconds.get(module(item), 0.0), i) for i, item in enumerate(items)}
    first = {}
    for item in items:
        first.setdefault(module(item), rank[id(item)])
    items.sort(key=lambda item: (first[module(item)], rank[id(item)][1]))


@pytest.fixture(scope="session", autouse=True)
def _apptest_survives_the_cpython_ast_race() -> Iterator[None]:
    """Every AppTest run survives CPython 3.11.7's AST race (tests/auth_support.py)."""
    from streamlit.testing.v1 import AppTest

    from tests.auth_support import run_surviving_the_ast_race

    original = AppTest.run
    AppTest.run = run_surviving_the_ast_race(original)  # type: ignore[method-assign]
    yield
    AppTest.run = original  # type: ignore[method-assign]


@pytest.fixture
def lake_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point ``ORDERTOWER_HOME`` (and so the lake and the Dagster instance) at an empty
    temporary directory. ``DAGSTER_HOME`` is unset so the instance lives there too: a test's runs
    never land in the developer's instance, nor share its ``lake_writer`` pool with a test
    running beside it."""
    home = tmp_path / "ordertower_home"
    home.mkdir()
    monkeypatch.setenv("ORDERTOWER_HOME", str(home))
    for var in (
        "ORDERTOWER_CATALOG",
        "ORDERTOWER_CATALOG_DSN",
        "ORDERTOWER_DATA_PATH",
        "DAGSTER_HOME",
        "MLFLOW_TRACKING_URI",
    ):
        monkeypatch.delenv(var, raising=False)
    return home


@pytest.fixture
def lake_writer(lake_home: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A writable connection to the temporary lake, with the ops and quarantine tables."""
    con = connect()
    ensure_ops_tables(con)
    try:
        yield con
    finally:
        con.close()


@pytest.fixture
def fresh_streamlit_caches() -> Iterator[None]:
    """Empty Streamlit's caches around a test.

    AppTest runs scripts in the test process, so a connection or query result cached for one
    test's temporary lake would otherwise leak into the next test.
    """
    import streamlit as st

    from dashboards import data

    st.cache_data.clear()
    st.cache_resource.clear()
    data.forget_snapshot()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()
    data.forget_snapshot()


# --------------------------------------------------------------------------------------------
# A realistic ingestion history
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetSpec:
    """How a seeded dataset behaves: volume, lateness and what goes wrong with it."""

    name: str
    domain: str
    owner: str
    daily_volume: int | None  # None: unpartitioned snapshot
    sla_hours: float | None
    lag_hours: float  # how long after its day the last ingestion finished
    reasons: tuple[str, ...]
    pii: tuple[str, ...] = ()
    csv_header: str | None = None


SEED_DATASETS = (
    DatasetSpec(
        "orders",
        "oms",
        "order-management",
        1200,
        26,
        2.0,
        (
            "order_id: required value is missing",
            "order_ts: 'yesterday' is not a timestamp",
            "channel: 'fax' is not one of web, app, marketplace, call_center",
        ),
        pii=("ip_address", "billing_address_street", "shipping_address_street"),
    ),
    DatasetSpec(
        "order_lines",
        "oms",
        "order-management",
        3100,
        26,
        2.0,
        ("quantity: 0 is below the minimum 1", "sku_id: 'SKU-???' does not match ^SKU-[0-9]{6}$"),
    ),
    DatasetSpec(
        "inventory_snapshots",
        "wms",
        "warehouse-ops",
        800,
        30,
        5.0,
        ("on_hand: -3 is below the minimum 0", "warehouse_id: required value is missing"),
        csv_header="snapshot_date,warehouse_id,sku_id,on_hand,reserved,inbound",
    ),
    # Late on purpose: last ingestion 10 h ago against a 6 h SLA.
    DatasetSpec(
        "carrier_events",
        "carriers",
        "transport",
        5200,
        6,
        10.0,
        (
            "checkpoint_time: required value is missing",
            "tracking_number: unknown tracking reference",
        ),
    ),
    DatasetSpec(
        "cancellations",
        "oms",
        "order-management",
        40,
        26,
        3.0,
        (
            "reason: 'changed_mind' is not one of customer_request, fraud_suspected, "
            "out_of_stock, payment_failed",
        ),
    ),
    DatasetSpec(
        "warehouses",
        "reference",
        "network-planning",
        None,
        24 * 8,
        30.0,
        ("latitude: 91.2 is above the maximum 90",),
    ),
    DatasetSpec("skus", "reference", "merchandising", None, None, 50.0, ()),
)


@dataclass
class SeededLake:
    """What :func:`seeded_lake` wrote, so tests can assert against it without re-deriving."""

    home: Path
    partitions: list[str]
    datasets: list[str] = field(default_factory=lambda: [d.name for d in SEED_DATASETS])
    late_datasets: list[str] = field(default_factory=lambda: ["carrier_events"])
    #: (dataset, partition) re-ingested: the older run must not be counted.
    rerun: tuple[str, str] = ("", "")


def _raw_record(spec: DatasetSpec, partition: str, n: int, reason: str) -> str:
    """A plausible original record, broken in the way ``reason`` says."""
    if spec.csv_header:
        warehouse = "" if "warehouse_id" in reason else "WH-MUC"
        on_hand = -3 if "on_hand" in reason else 12
        return f"{partition},{warehouse},SKU-{100000 + n},{on_hand},2,0"
    record: dict[str, object] = {"record": n, "partition": partition}
    if spec.name == "orders":
        record = {
            "order_id": None if "order_id" in reason else f"ORD-{n:09d}",
            "customer_id": f"CUS-{n % 997:07d}",
            "order_ts": "yesterday" if "order_ts" in reason else f"{partition}T10:15:00+02:00",
            "channel": "fax" if "channel" in reason else "web",
            "ip_address": "203.0.113.7",
            "billing_address": {"street": "Hauptstr. 1", "city": "Berlin", "country_code": "DE"},
            "shipping_address": {"street": "Hauptstr. 1", "city": "Berlin", "country_code": "DE"},
            "lines": [{"line_no": 1, "sku_id": "SKU-000042", "quantity": 1}],
        }
    elif spec.name == "carrier_events":
        record = {
            "msg_id": f"msg-{n:06d}",
            "event": "tracking_update",
            "carrier": "PCL-EU",
            "tracking_number": f"UNKNOWN-{n}" if "tracking" in reason else f"1Z{n:08d}",
            "checkpoint": {
                "tag": "InTransit",
                "checkpoint_time": None
                if "checkpoint" in reason
                else f"{partition}T08:30:00+01:00",
            },
        }
    elif spec.name == "order_lines":
        record = {
            "order_id": f"ORD-{n:09d}",
            "line_no": 1,
            "sku_id": "SKU-???" if "sku_id" in reason else "SKU-000042",
            "quantity": 0 if "quantity" in reason else 2,
        }
    return json.dumps(record)


def _rule_for(reason: str) -> tuple[str, str]:
    """The contract rule (name suffix, Great Expectations expectation) a reason comes from."""
    if "missing" in reason:
        return "required", "expect_column_values_to_not_be_null"
    if "minimum" in reason or "maximum" in reason:
        return "range", "expect_column_values_to_be_between"
    if "is not one of" in reason:
        return "allowed_values", "expect_column_values_to_be_in_set"
    if "unknown" in reason:
        return "known_reference", "expect_column_values_to_be_in_set"
    if "columns match" in reason:
        return "schema", "expect_table_columns_to_match_set"
    return "format", "expect_column_values_to_match_regex"


def seed_ops_history(con: duckdb.DuckDBPyConnection, days: int = 21, seed: int = 7) -> SeededLake:
    """Write a realistic ingestion history: registry, runs, quarantine and contract results.

    Daily partitions end yesterday; freshness is relative to now, so exactly the datasets in
    ``SeededLake.late_datasets`` breach their SLA. One partition was ingested twice (the older
    run has different numbers) and one day has a quarantine spike.
    """
    rng = random.Random(seed)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    today = now.date()
    dates = [today - dt.timedelta(days=d) for d in range(days, 0, -1)]
    partitions = [d.isoformat() for d in dates]
    spike_day = partitions[-6]
    rerun = ("orders", partitions[-1])

    registry, runs, rejected, results = [], [], [], []
    for spec in SEED_DATASETS:
        registry.append(
            {
                "dataset": spec.name,
                "title": spec.name.replace("_", " ").title(),
                "description": f"{spec.name} as delivered by {spec.domain}",
                "domain": spec.domain,
                "owner": spec.owner,
                "contract_version": "1.0.0",
                "raw_table": f"raw.{spec.name}",
                "partitioned": spec.daily_volume is not None,
                "freshness_sla_hours": spec.sla_hours,
                "rules": 3,
                "pii_columns": list(spec.pii),
            }
        )
        keys = partitions if spec.daily_volume is not None else [UNPARTITIONED]
        for i, key in enumerate(keys):
            days_ago = len(keys) - i - 1
            finished = now - dt.timedelta(days=days_ago, hours=spec.lag_hours)
            volume = spec.daily_volume or 150
            received = int(volume * rng.uniform(0.85, 1.15))
            quarantined = 0 if not spec.reasons else rng.randint(0, max(2, volume // 250))
            if key == spike_day and spec.name == "orders":
                quarantined = 60
            if (spec.name, key) == rerun:
                quarantined = 3
            attempts = (
                [("old", 5), ("new", quarantined)]
                if (spec.name, key) == rerun
                else [("new", quarantined)]
            )
            for attempt, (suffix, q) in enumerate(attempts):
                run_id = f"run-{spec.name}-{key}-{suffix}"
                done = finished - dt.timedelta(hours=2 * (len(attempts) - 1 - attempt))
                runs.append(
                    {
                        "run_id": run_id,
                        "dataset": spec.name,
                        "partition_key": key,
                        "files": 1 if spec.name != "carrier_events" else 3,
                        "received": received,
                        "landed": received - q,
                        "quarantined": q,
                        "unknown_codes": rng.randint(0, 3) if spec.name == "carrier_events" else 0,
                        "max_event_ts": done - dt.timedelta(hours=1),
                        "started_at": done - dt.timedelta(minutes=3),
                        "finished_at": done,
                    }
                )
                for n in range(q):
                    reason = spec.reasons[n % len(spec.reasons)] if n % 4 else spec.reasons[0]
                    reasons = [reason]
                    if spec.name == "orders" and n % 7 == 3:
                        reasons = [
                            reason,
                            "channel: 'fax' is not one of web, app, marketplace, call_center",
                        ]
                    rejected.append(
                        {
                            "run_id": run_id,
                            "dataset": spec.name,
                            "partition_key": key,
                            "source_file": f"{spec.domain}/{spec.name}/date={key}/{spec.name}."
                            + ("csv" if spec.csv_header else "jsonl"),
                            "record_no": 10 * n + 3,
                            "reason": "; ".join(reasons),
                            "reasons": reasons,
                            "raw_record": _raw_record(spec, key, n, reason),
                            "quarantined_at": done,
                        }
                    )
                for reason in spec.reasons or ("schema: columns match",):
                    column = reason.split(":")[0]
                    kind, expectation = _rule_for(reason)
                    hits = sum(
                        1
                        for row in rejected
                        if row["run_id"] == run_id and reason in row["reasons"]
                    )
                    results.append(
                        {
                            "run_id": run_id,
                            "dataset": spec.name,
                            "partition_key": key,
                            "rule": f"{column}_{kind}",
                            "column_name": column,
                            "expectation": expectation,
                            "severity": "error",
                            "success": hits == 0,
                            "unexpected_count": hits,
                            "evaluated_rows": received,
                            "checked_at": done,
                        }
                    )
                results.append(
                    {
                        "run_id": run_id,
                        "dataset": spec.name,
                        "partition_key": key,
                        "rule": "max_quarantine_rate",
                        "column_name": None,
                        "expectation": "quarantine_rate_at_most_1_percent",
                        "severity": "error",
                        "success": q <= 0.01 * received,
                        "unexpected_count": q,
                        "evaluated_rows": received,
                        "checked_at": done,
                    }
                )

    for table, rows in (
        ("ops.datasets", registry),
        ("ops.ingest_runs", runs),
        ("quarantine.rejected_records", rejected),
        ("ops.contract_results", results),
    ):
        frame = pd.DataFrame(rows)
        columns = ", ".join(frame.columns)
        con.register("seed_rows", frame)
        con.execute(f"insert into {table} ({columns}) select {columns} from seed_rows")
        con.unregister("seed_rows")
    return SeededLake(home=Path(), partitions=partitions, rerun=rerun)


@pytest.fixture
def seeded_lake_factory(lake_home: Path) -> Callable[..., SeededLake]:
    """Seed the temporary lake on demand (for tests that start before anything is ingested)."""

    def seed(days: int = 21) -> SeededLake:
        con = connect()
        try:
            ensure_ops_tables(con)
            seeded = seed_ops_history(con, days=days)
        finally:
            con.close()
        return SeededLake(home=lake_home, partitions=seeded.partitions, rerun=seeded.rerun)

    return seed


@pytest.fixture
def seeded_lake(seeded_lake_factory: Callable[..., SeededLake]) -> SeededLake:
    """A temporary lake holding three weeks of realistic ingestion history."""
    return seeded_lake_factory()
