"""The governed marts on a small simulated world (plus the real Olist orders when present).

The world is the run's lake (tests/dashboard_world.py, built once per run) with Olist landed
and the whole graph materialised on it, every dbt data test included; the tests then check
the marts against the raw data, run dbt's unit tests, and hand-check 20 random orders by
recomputing their timeline, on-time flag and CO2e independently from raw tables and the
published factor table. Re-runs, late and re-sent carrier events are
tests/test_incremental_marts.py's (the daily job run twice, late files on an incremental lake).
"""

from __future__ import annotations

import csv
import json
import os
import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from ordertower import lake
from ordertower.settings import DBT_PROJECT_DIR, SHARED_DATASETS_DIR
from pipelines.cli import main
from pipelines.defs.ingest.assets import partitioned_ingest_keys
from pipelines.ingest import olist
from tests.dashboard_world import DISPATCH_DAYS, lake_copy
from tests.shared_worlds import at_home

pytestmark = pytest.mark.slow

SEEDS = DBT_PROJECT_DIR / "seeds" / "reference"
#: the days whose dispatch waves the world plans: its last ones
DISPATCH_WINDOW = [f"2026-09-{day:02d}" for day in range(10 - DISPATCH_DAYS, 10)]
#: every asset but the ingestion of the simulated feeds (the copied lake landed them)
NOT_THE_FEEDS = "not ({})".format(
    " or ".join(f"key:{k.to_user_string()}" for k in partitioned_ingest_keys)
)

MARTS = [
    "dim_date",
    "dim_customer",
    "dim_sku",
    "dim_warehouse",
    "dim_carrier",
    "fct_orders",
    "fct_order_lines",
    "fct_shipment_legs",
    "fct_tracking_events",
    "fct_order_timeline",
    "fct_inventory_daily",
    "fct_order_exceptions",
    "kpi_daily",
    "kpi_weekly",
    "fct_dispatch_waves",
    "fct_dispatch_plan_vs_baseline",
    "fct_dispatch_shipments",
    "fct_route_plans",
    "fct_route_stops",
]


def _olist_available() -> bool:
    return all((olist.default_source_dir() / n).is_file() for n in olist.OLIST_FILES)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The whole graph of ``make demo`` with every dbt data test, on a copy of the run's lake
    (tests/dashboard_world.py: this module's world, its feeds landed and its lake built without
    the data tests): Olist landed, then every asset materialised but the simulated feeds'
    ingestion, which the copy has done already (tests/test_ingest.py and the re-runs below
    cover it). The dispatch waves and van rounds are planned for the world's last
    :data:`DISPATCH_WINDOW` days, as the dashboards' world does (tests/test_dispatch.py covers
    the optimiser; eighteen more days of waves here cost CI a minute), with ``--recent`` as
    ``make demo`` plans its last month. Fails if any dbt model or data test fails."""
    home = lake_copy(tmp_path_factory, "marts_world")
    with at_home(home):
        if _olist_available():
            assert main(["olist", "land"]) == 0
        # the dispatch waves of the last days only, in a run of their own (as `make demo`)
        recent = f"dispatch={DISPATCH_DAYS}"
        assert main(["materialize", "--select", NOT_THE_FEEDS, "--recent", recent]) == 0
        yield home


def _query(sql: str, params: list | None = None) -> pd.DataFrame:
    con = lake.connect(read_only=True)
    try:
        return con.execute(sql, params or []).df()
    finally:
        con.close()


def test_the_models_unit_tests_pass(world: Path, capfd: pytest.CaptureFixture[str]):
    """dbt's unit tests, which the orchestrated runs leave out (fixed inputs prove the code,
    not the day's data), run here on the built lake."""
    assert main(["dbt", "test", "--select", "test_type:unit"]) == 0
    out = capfd.readouterr().out
    done = out.rsplit("Done. ", 1)[-1].split()  # PASS=20 WARN=0 ERROR=0 SKIP=0 ... TOTAL=20
    counts = dict(item.split("=", 1) for item in done if "=" in item)
    assert counts.get("ERROR") == "0" and counts.get("PASS") == counts.get("TOTAL"), out[-2000:]
    assert int(counts["TOTAL"]) >= 20  # every unit test ran


def test_every_mart_is_built_and_holds_rows(world: Path):
    counts = {m: int(_query(f"select count(*) as n from marts.{m}").n[0]) for m in MARTS}
    assert all(counts.values()), counts
    orders = _query("select count(*) as n from raw.orders").n[0]
    simulated = _query("select count(*) as n from marts.fct_orders where source_system = 'oms'")
    assert simulated.n[0] == orders  # one row per landed order, none lost, none doubled


def test_tracking_events_are_canonical_unique_and_sequenced(world: Path):
    raw = _query("select count(distinct event_id) as n, count(*) as copies from raw.carrier_events")
    events = _query(
        "select count(*) as n, count(distinct event_id) as ids, "
        "sum(received_count) as copies from marts.fct_tracking_events"
    )
    assert events.n[0] == events.ids[0] == raw.n[0]
    assert events.copies[0] == raw.copies[0]  # every received copy is accounted for
    gaps = _query(
        "select tracking_ref from marts.fct_tracking_events group by tracking_ref "
        "having max(event_seq) <> count(*) or min(event_seq) <> 1"
    )
    assert gaps.empty


def test_no_pii_value_leaves_the_raw_layer(world: Path):
    """Values of every contract-classified PII column never appear in a staging model, an
    intermediate model or a mart (the whole graph of this module's world, dispatch included)."""
    from pipelines.contracts import load_contracts

    con = lake.connect(read_only=True)
    try:
        samples: set[str] = set()
        for contract in load_contracts().values():
            for column in contract.pii_columns:
                if contract.column(column).logical_type not in ("string",):
                    continue
                rows = con.execute(
                    f'select distinct "{column}" from {contract.table} where "{column}" is not null limit 30'
                ).fetchall()
                samples.update(str(r[0]) for r in rows if len(str(r[0])) >= 6)
        # values that non-personal columns also hold (a city that is a warehouse's city) are public
        for contract in load_contracts().values():
            for col in contract.columns:
                if col.logical_type == "string" and not col.is_pii:
                    rows = con.execute(
                        f'select distinct "{col.name}" from {contract.table} limit 50000'
                    ).fetchall()
                    samples -= {str(r[0]) for r in rows}
        assert len(samples) > 100
        columns = con.execute(
            "select schema_name, table_name, column_name from duckdb_columns() "
            "where database_name = 'lake' and data_type = 'VARCHAR' "
            "and schema_name in ('staging', 'intermediate', 'marts')"
        ).fetchall()
        assert columns, "no staging models were built"
        leaks = []
        for schema, table, column in columns:
            values = {
                r[0]
                for r in con.execute(
                    f'select distinct "{column}" from {schema}."{table}"'
                ).fetchall()
            }
            if hit := values & samples:
                leaks.append((table, column, sorted(hit)[:2]))
        assert leaks == []
    finally:
        con.close()


# ------------------------------------------------------------------ the hand-check of 20 orders


def _factors() -> dict[str, float]:
    with open(SEEDS / "freight_emission_factors.csv", encoding="utf-8") as fh:
        return {r["vehicle_class"]: float(r["wtw_g_co2e_per_tkm"]) for r in csv.DictReader(fh)}


def _zones() -> dict[str, str]:
    with open(SEEDS / "countries.csv", encoding="utf-8") as fh:
        return {r["country_code"]: r["timezone"] for r in csv.DictReader(fh)}


def _independent_view(order_ids: list[str]) -> dict[str, dict]:
    """Timeline, on-time and CO2e of each order, from raw tables only (no dbt model)."""
    ids = pd.DataFrame({"order_id": order_ids})
    con = lake.connect(read_only=True)
    try:
        con.register("ids", ids)
        orders = con.execute(
            "select order_id, order_ts, promised_delivery_date, shipping_address_country_code "
            "from raw.orders join ids using (order_id)"
        ).df()
        shipments = con.execute(
            "select shipment_id, order_id, total_weight_kg, created_at "
            "from raw.shipments join ids using (order_id)"
        ).df()
        legs = con.execute(
            "select l.* from raw.shipment_legs l join raw.shipments s using (shipment_id) "
            "join ids using (order_id)"
        ).df()
        events = con.execute(
            "select e.event_id, e.tracking_ref, e.event_code, e.event_classifier, e.event_ts "
            "from raw.carrier_events e join raw.shipment_legs l using (tracking_ref) "
            "join raw.shipments s using (shipment_id) join ids using (order_id)"
        ).df()
    finally:
        con.close()
    events = events[events.event_classifier == "ACT"].drop_duplicates("event_id")
    factors, zones = _factors(), _zones()
    view: dict[str, dict] = {}
    for order in orders.itertuples():
        mine = shipments[shipments.order_id == order.order_id]
        co2 = 0.0
        delivered: list[datetime | None] = []
        shipped: list[datetime] = []
        milestones: dict[str, datetime | None] = {"ordered": order.order_ts}
        for shipment in mine.itertuples():
            for leg in legs[legs.shipment_id == shipment.shipment_id].itertuples():
                co2 += (
                    shipment.total_weight_kg
                    / 1000
                    * leg.distance_km
                    * factors[leg.vehicle_class]
                    / 1000
                )
                mine_events = events[events.tracking_ref == leg.tracking_ref]
                dep_code, arr_code = (
                    ("OUT_FOR_DELIVERY", "DELIVERED")
                    if leg.mode == "last_mile"
                    else ("DEPARTED", "ARRIVED")
                )
                dep = mine_events[mine_events.event_code == dep_code].event_ts.min()
                arr = mine_events[mine_events.event_code == arr_code].event_ts.min()
                if leg.leg_no == 1 and not pd.isna(dep):
                    shipped.append(dep)
                if len(mine) == 1:
                    milestones[f"leg_{leg.leg_no}_departed"] = None if pd.isna(dep) else dep
                    milestones[f"leg_{leg.leg_no}_arrived"] = None if pd.isna(arr) else arr
                if leg.mode == "last_mile":
                    delivered.append(None if pd.isna(arr) else arr)
        delivered_at = (
            max(delivered) if delivered and all(d is not None for d in delivered) else None
        )
        milestones["shipped"] = min(shipped) if shipped else None
        milestones["delivered"] = delivered_at
        on_time = None
        if delivered_at is not None:
            zone = ZoneInfo(zones[order.shipping_address_country_code])
            local_day = delivered_at.astimezone(zone).date()
            on_time = local_day <= pd.Timestamp(order.promised_delivery_date).date()
        view[order.order_id] = {
            "kg_co2e": co2 if len(mine) else None,
            "is_on_time_if_delivered": on_time,
            "delivered_at": delivered_at,
            "milestones": milestones,
        }
    return view


def test_hand_check_twenty_random_orders(world: Path):
    candidates = _query(
        "select order_id from marts.fct_orders where source_system = 'oms' and is_delivered "
        "order by order_id"
    ).order_id.tolist()
    split = _query(
        "select order_id from marts.fct_orders where is_split_shipment and is_delivered "
        "order by order_id limit 3"
    ).order_id.tolist()
    picked = sorted(set(random.Random(20).sample(candidates, 17) + split))
    assert len(picked) >= 18
    expected = _independent_view(picked)
    marts = _query(
        "select order_id, kg_co2e, is_on_time, delivered_at, shipped_at, ordered_at "
        "from marts.fct_orders where order_id in (select unnest(?))",
        [picked],
    ).set_index("order_id")
    timeline = _query(
        "select order_id, milestone, actual_at from marts.fct_order_timeline "
        "where order_id in (select unnest(?))",
        [picked],
    )
    for order_id in picked:
        want, got = expected[order_id], marts.loc[order_id]
        assert got.kg_co2e == pytest.approx(want["kg_co2e"], abs=1e-5), order_id
        assert bool(got.is_on_time) == want["is_on_time_if_delivered"], order_id
        assert got.delivered_at == want["delivered_at"], order_id
        rows = timeline[timeline.order_id == order_id]
        for milestone, at in want["milestones"].items():
            actual = rows[rows.milestone == milestone].actual_at
            assert len(actual) >= 1, (order_id, milestone)
            if at is None:
                assert actual.isna().all(), (order_id, milestone)
            else:
                assert at in set(actual.dropna()), (order_id, milestone)


def test_emission_factors_seed_matches_the_published_table():
    """Every factor in the seed is DEFRA/DESNZ 2025's, and WTW = TTW + WTT."""
    published = (
        SHARED_DATASETS_DIR / "emission_factors" / "defra_desnz_2025_freight_tkm_summary.csv"
    )
    if not published.is_file():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{published} is missing; under CI=true the real-data checks must run")
        pytest.skip(f"the published factor extract is not at {published}")
    with open(published, encoding="utf-8", errors="replace") as fh:
        rows = {r["defra_id_ttw"]: r for r in csv.DictReader(fh)}
    with open(SEEDS / "freight_emission_factors.csv", encoding="utf-8") as fh:
        seed = list(csv.DictReader(fh))
    assert seed
    for row in seed:
        source = rows[row["defra_id"]]
        assert float(row["ttw_g_co2e_per_tkm"]) == pytest.approx(
            float(source["direct_gCO2e_per_tkm"])
        )
        assert float(row["wtt_g_co2e_per_tkm"]) == pytest.approx(float(source["wtt_gCO2e_per_tkm"]))
        assert float(row["wtw_g_co2e_per_tkm"]) == pytest.approx(
            float(row["ttw_g_co2e_per_tkm"]) + float(row["wtt_g_co2e_per_tkm"]), abs=0.006
        )


def test_olist_orders_flow_to_fct_orders_and_the_kpis(world: Path):
    if not _olist_available():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("the Olist extract must be present under CI=true")
        pytest.skip("the Olist extract (../shared/datasets/olist) is not here")
    orders = _query(
        "select count(*) as n, avg(is_on_time::int) as on_time, "
        "median(order_to_delivery_hours) / 24 as lead_days "
        "from marts.fct_orders where source_system = 'olist'"
    ).iloc[0]
    assert orders.n == 10_000
    assert 0.85 < orders.on_time < 0.97  # published analyses of Olist: about 92 % on time
    assert 7 < orders.lead_days < 15
    kpis = _query(
        "select sum(orders) as orders, sum(on_time_orders) / sum(due_orders) as rate "
        "from marts.kpi_daily where source_system = 'olist'"
    ).iloc[0]
    assert kpis.orders == 10_000
    assert kpis.rate == pytest.approx(orders.on_time, abs=0.01)


def test_timeline_has_every_milestone_in_order_for_a_delivered_order(world: Path):
    order_id = _query(
        "select order_id from marts.fct_orders where source_system = 'oms' and is_delivered "
        "and not is_split_shipment and route_modes like 'road>last_mile' order by order_id limit 1"
    ).order_id[0]
    rows = _query(
        "select milestone, actual_at from marts.fct_order_timeline where order_id = ? "
        "order by milestone_rank",
        [order_id],
    )
    assert list(rows.milestone) == [
        "ordered",
        "paid",
        "picked",
        "shipped",
        "leg_1_departed",
        "leg_1_arrived",
        "leg_2_departed",
        "out_for_delivery",
        "leg_2_arrived",
        "delivered",
    ]
    done = rows.dropna(subset=["actual_at"])
    assert list(done.actual_at) == sorted(done.actual_at)
    assert timedelta(0) <= rows.actual_at.iloc[-1] - rows.actual_at.iloc[0]


def test_dbt_docs_generate_works_on_the_lake(world: Path, tmp_path: Path):
    target = tmp_path / "docs_target"
    assert main(["dbt", "docs", "generate", "--target-path", str(target)]) == 0
    catalog = json.loads((target / "catalog.json").read_text())
    nodes = {n.split(".")[-1] for n in catalog["nodes"]}
    assert {"fct_orders", "fct_order_timeline", "kpi_weekly"} <= nodes
    assert (target / "index.html").exists()


def test_cli_dbt_needs_arguments(capsys):
    assert main(["dbt"]) == 1
    assert "give dbt arguments" in capsys.readouterr().err


def test_cli_dbt_without_a_lake_says_so(lake_home: Path, capsys):
    """A dbt command that opens the lake, before there is one: one line, no traceback."""
    assert main(["dbt", "compile", "--select", "fct_orders"]) == 1
    err = capsys.readouterr().err
    assert "no lake at" in err and "make demo" in err and "Traceback" not in err
    assert not (lake_home / "lake" / "catalog.sqlite").exists()


def test_every_wave_is_planned_and_routed_with_green_checks(world: Path):
    """The materialised graph plans each wave beside the baseline, routes the forward
    warehouses' vans, and its asset checks passed (read from the Dagster instance)."""
    import dagster as dg

    from pipelines.materialize import instance

    waves = _query("select * from marts.fct_dispatch_plan_vs_baseline order by wave_date")
    days = _query(
        "select count(distinct wave_date) as n from intermediate.int_dispatch_lines "
        "where wave_date between ? and ?",
        [DISPATCH_WINDOW[0], DISPATCH_WINDOW[-1]],
    )
    assert days.n[0] == len(DISPATCH_WINDOW)
    # every wave of the window has both plans, and no other wave was planned
    assert [str(d)[:10] for d in waves["wave_date"]] == DISPATCH_WINDOW
    assert (waves["solver_status"].isin(["OPTIMAL", "FEASIBLE"])).all()
    orders = waves["orders"].sum()
    opt = (waves["cost_per_order_eur"] * waves["orders"]).sum() / orders
    base = (waves["baseline_cost_per_order_eur"] * waves["orders"]).sum() / orders
    assert opt < base
    nd = waves["next_day_orders"]
    assert (waves["next_day_hit_rate"] * nd).sum() >= (
        waves["baseline_next_day_hit_rate"] * nd
    ).sum()
    routed = _query(
        "select count(distinct wave_date) as n, bool_and(is_feasible) as ok from marts.fct_route_plans"
    )
    assert routed.ok[0] and routed.n[0] == days.n[0]
    stops = _query(
        "select count(*) as n from marts.fct_route_stops s join marts.fct_dispatch_shipments d "
        "on d.plan = 'optimised' and d.order_id = s.order_id and d.warehouse_id = s.warehouse_id"
    )
    planned_van = _query(
        "select count(*) as n from marts.fct_dispatch_shipments where plan = 'optimised' "
        "and modes = 'last_mile' and not is_deferred and warehouse_type = 'forward'"
    )
    assert stops.n[0] == planned_van.n[0]  # every forward van delivery is on exactly one route
    storage = instance().event_log_storage
    for asset, check in [
        (["ml", "dispatch_shipments"], "no_allocation_without_stock"),
        (["ml", "dispatch_shipments"], "no_capacity_exceeded"),
        (["ml", "route_plans"], "every_route_feasible"),
    ]:
        key = dg.AssetCheckKey(dg.AssetKey(asset), check)
        record = storage.get_latest_asset_check_execution_by_key([key])[key]
        assert record.status.value == "SUCCEEDED", (check, record.status)


def test_identifiers_are_keyed_hashes_and_no_network_is_stored(world: Path):
    """stg_oms__orders' hashes are HMAC-SHA256 under the PII key (not a bare SHA-256); no lake
    relation exposes the IP's network in clear; the key is in no dbt file or Dagster store."""
    import hashlib
    import hmac

    from ordertower.settings import get_settings

    key = get_settings().pii_key()
    rows = _query(
        "select o.ip_address, o.device_id, s.ip_address_hash, s.device_id_hash, "
        "s.ip_network_hash from raw.orders o join staging.stg_oms__orders s using (order_id) "
        "where o.ip_address is not null and o.device_id is not null order by order_id limit 50"
    )
    assert len(rows) == 50

    def keyed(text: str) -> str:
        return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()

    for r in rows.itertuples():
        plain = hashlib.sha256(r.ip_address.encode()).hexdigest()
        assert r.ip_address_hash == keyed(r.ip_address) != plain
        assert r.device_id_hash == keyed(r.device_id)
        network = ".".join(str(int(p)) for p in r.ip_address.split(".")[:3]) + ".0/24"
        assert r.ip_network_hash == keyed(network)
    exposed = _query(
        "select table_schema, table_name, column_name from information_schema.columns "
        "where table_schema <> 'raw' and (column_name ilike '%network_int%' "
        "or column_name in ('ip_address', 'ip_network'))"
    )
    assert exposed.empty, exposed
    facts = _query(
        "select count(*) as n, count(ip_country_code) as located, "
        "count(distinct ip_network_key) as networks from intermediate.int_order_risk_facts"
    )
    assert facts.located[0] > 0.9 * facts.n[0] and facts.networks[0] > 1  # still geolocated
    secret = key.hex()
    for root in (
        DBT_PROJECT_DIR / "target",
        DBT_PROJECT_DIR / "logs",
        world / "dagster",
        world / "dbt",
    ):
        for path in root.rglob("*") if root.exists() else []:
            if path.is_file() and path.stat().st_size < 50_000_000:
                assert secret.encode() not in path.read_bytes(), path


def test_the_pattern_scan_finds_no_personal_data_outside_the_raw_layer(world: Path):
    """``ordertower pii scan`` over the lake (staging, intermediate, marts, ml, ops), the
    quarantine's reasons, Dagster's stores, MLflow, the logs and the CRM finds nothing."""
    from pipelines.pii_scan import format_report, scan

    report = scan()
    assert report.scanned["lake"]["columns"] > 100 and report.scanned["dagster"]["files"] > 0
    assert report.scanned.get("mlflow", {}).get("files", 0) > 0
    assert report.clean, format_report(report)


def test_waves_solved_in_worker_processes_are_the_waves_solved_in_turn(
    tmp_path_factory: pytest.TempPathFactory,
):
    """plan_waves with two worker processes (what a multi-day dispatch_plan run does) stores
    the plans one process stores: the same shipments, costs and checks, wave by wave. The
    waves it loads several at a time are the waves loaded one by one (the lake's first day,
    without an earlier stock snapshot, included)."""
    from ml.dispatch import pipeline, store
    from ml.dispatch.config import load_policy

    home = lake_copy(tmp_path_factory, "dispatch_pool_world")
    with at_home(home):
        con = lake.connect()
        try:
            all_days = [
                r[0]
                for r in con.execute(
                    "select distinct wave_date from intermediate.int_dispatch_lines order by 1"
                ).fetchall()
            ]
            days = all_days[-3:]
            policy = load_policy()
            network = store.load_network(con, policy)
            batch = store.load_waves(con, [all_days[0], *days], policy, network)
            assert list(batch) == [all_days[0], *days]
            for day, wave in batch.items():
                alone = store.load_wave(con, day, policy, network)
                pd.testing.assert_frame_equal(wave.lines, alone.lines)
                assert (wave.stock == alone.stock).all() and wave.stock.sum() > 0
            plans = {}
            for workers in (1, 2):
                results = pipeline.plan_waves(con, days, load_policy(), workers=workers)
                ships = con.execute(
                    "select wave_date, plan, order_id, warehouse_id, modes, transport_cost_eur, kg_co2e "
                    "from ml.dispatch_shipments order by all"
                ).df()
                plans[workers] = (results, ships)
        finally:
            con.close()
    (one, ships_one), (two, ships_two) = plans[1], plans[2]
    assert [r["wave_date"] for r in two] == [str(d) for d in days]  # stored in day order
    keys = ("cost_eur", "orders", "next_day_hit_rate", "status")
    assert [{k: r["optimised"][k] for k in keys} for r in two] == [
        {k: r["optimised"][k] for k in keys} for r in one
    ]
    assert [r["violations"] for r in two] == [r["violations"] for r in one] == [[], [], []]
    assert len(ships_one) > 0
    pd.testing.assert_frame_equal(ships_two, ships_one)
