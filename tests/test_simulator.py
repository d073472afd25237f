"""Tests for the seeded world simulator: reproducibility, layout, invariants, realism."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from ordertower.lake import NO_AUTO_EXTENSIONS
from pipelines.simulator import SimulationSummary, simulate

START = dt.date(2026, 11, 3)  # 11 November falls inside the window
ORDER_KEYS = [
    "order_id",
    "customer_id",
    "order_ts",
    "channel",
    "payment_method",
    "payment_instrument_id",
    "device_id",
    "ip_address",
    "user_agent",
    "currency",
    "promise_type",
    "promised_delivery_date",
    "promo_code",
    "billing_address",
    "shipping_address",
    "order_total",
    "shipping_fee",
    "lines",
]
ADDRESS_KEYS = ["street", "city", "postal_code", "country_code", "latitude", "longitude"]
LEG_KEYS = [
    "leg_no",
    "mode",
    "carrier_id",
    "tracking_ref",
    "vehicle_class",
    "origin_name",
    "origin_lat",
    "origin_lon",
    "origin_country",
    "destination_name",
    "destination_lat",
    "destination_lon",
    "destination_country",
    "distance_km",
    "planned_departure_at",
    "planned_arrival_at",
]
CSV_HEADERS = {
    "reference/warehouses.csv": "warehouse_id,name,warehouse_type,city,country_code,latitude,"
    "longitude,timezone,outbound_capacity_per_day,opened_on",
    "reference/carriers.csv": "carrier_id,name,carrier_type,feed_format,modes,country_code",
    "reference/skus.csv": "sku_id,name,category,weight_kg,volume_l,unit_price,currency,"
    "risk_class,launched_on",
    "reference/ip_ranges.csv": "ip_from,ip_to,country_code,city,latitude,longitude",
}
PARTITIONED_CSV = {
    "oms/cancellations": ("cancellations.csv", "order_id,cancelled_at,reason"),
    "wms/inventory": (
        "inventory_snapshot.csv",
        "snapshot_date,warehouse_id,sku_id,on_hand,reserved,inbound,replenished_qty",
    ),
    "payments/chargebacks": (
        "chargebacks.csv",
        "label_id,order_id,label_type,reported_at,amount,reason_code",
    ),
}
VEHICLES = {
    "van_diesel_average",
    "rigid_7.5-17t",
    "artic_gt33t",
    "rail_freight",
    "air_short_haul",
    "air_long_haul",
    "container_ship_average",
}


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> tuple[Path, SimulationSummary]:
    out = tmp_path_factory.mktemp("clean")
    return out, simulate(out, orders=4000, days=14, seed=7, start=START, dirty_rate=0.0)


@pytest.fixture(scope="module")
def dirty(tmp_path_factory) -> tuple[Path, SimulationSummary]:
    out = tmp_path_factory.mktemp("dirty")
    return out, simulate(out, orders=2000, days=8, seed=3, dirty_rate=0.01)


@pytest.fixture(scope="module")
def db() -> duckdb.DuckDBPyConnection:
    return duckdb.connect(config=NO_AUTO_EXTENSIONS)


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _all_jsonl(root: Path, pattern: str) -> list[dict]:
    return [row for p in sorted(root.glob(pattern)) for row in _jsonl(p)]


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _dates(start: dt.date, days: int) -> list[str]:
    return [(start + dt.timedelta(days=i)).isoformat() for i in range(days)]


def test_same_seed_is_byte_identical_and_other_seed_differs(tmp_path: Path) -> None:
    kw = {"orders": 1500, "days": 6, "dirty_rate": 0.01}
    simulate(tmp_path / "a", seed=11, **kw)
    simulate(tmp_path / "b", seed=11, **kw)
    simulate(tmp_path / "c", seed=12, **kw)
    a, b, c = (_digest(tmp_path / x) for x in "abc")
    assert len(a) > 80
    assert a == b
    assert a.keys() == c.keys()
    differing = [k for k in a if a[k] != c[k]]
    assert "oms/orders/date=2026-08-20/orders.jsonl" in differing
    assert len(differing) > len(a) // 2


def test_arguments_are_validated(tmp_path: Path) -> None:
    for bad in (
        {"orders": 0},
        {"days": 0},
        {"seed": -1},
        {"dirty_rate": -0.1},
        {"start": "2026-01-01"},
    ):
        with pytest.raises(ValueError):
            simulate(tmp_path, **{"orders": 10, "days": 2, **bad})


@pytest.mark.parametrize(("orders", "days"), [(1, 1), (5, 1), (50, 3)])
def test_a_tiny_world_is_simulated_whole(tmp_path: Path, orders: int, days: int) -> None:
    # a few orders may have no gift or work address, no fraud, no exception: nothing breaks
    summary = simulate(tmp_path, orders=orders, days=days, seed=2)
    assert summary.rows["orders"] == orders
    assert summary.files_written == sum(1 for p in tmp_path.rglob("*") if p.is_file())


def test_summary_counts_rows_and_files(clean) -> None:
    out, s = clean
    d = s.as_dict()
    assert d["orders"] == 4000 and d["rows"]["orders"] == 4000
    assert s.rows["warehouses"] == 12 and s.rows["carriers"] >= 6
    assert s.files_written == sum(1 for p in out.rglob("*") if p.is_file())
    assert s.seconds > 0 and s.bytes_written > 0


def test_every_file_of_the_layout_exists_with_spec_headers(clean) -> None:
    out, s = clean
    for rel, header in CSV_HEADERS.items():
        assert (out / rel).read_text().splitlines()[0] == header
    carriers = list(csv.DictReader((out / "reference/carriers.csv").open()))
    feeds = {
        "parcel_webhook_json": "webhooks.jsonl",
        "dcsa_tnt_json": "events.jsonl",
        "rail_csv": "events.csv",
    }
    assert {c["feed_format"] for c in carriers} == set(feeds)
    for date in _dates(START, 14):
        for folder, (name, header) in PARTITIONED_CSV.items():
            assert (out / folder / f"date={date}" / name).read_text().splitlines()[0] == header
        for folder, name in [
            ("oms/orders", "orders.jsonl"),
            ("tms/shipments", "shipments.jsonl"),
            ("crm/reviews", "reviews.jsonl"),
        ]:
            assert (out / folder / f"date={date}" / name).exists()
        for c in carriers:
            assert (
                out / "carriers" / c["carrier_id"] / f"date={date}" / feeds[c["feed_format"]]
            ).exists()
    for name in ["orders_truth", "shipments_truth", "defects"]:
        assert (out / "truth" / f"{name}.parquet").exists()


def test_json_records_use_the_spec_field_names(clean) -> None:
    out, _ = clean
    order = _all_jsonl(out, "oms/orders/*/orders.jsonl")[0]
    assert list(order) == ORDER_KEYS
    assert list(order["shipping_address"]) == ADDRESS_KEYS
    assert list(order["lines"][0]) == ["line_no", "sku_id", "quantity", "unit_price", "discount"]
    ship = _all_jsonl(out, "tms/shipments/*/shipments.jsonl")[0]
    assert list(ship) == [
        "shipment_id",
        "order_id",
        "warehouse_id",
        "created_at",
        "service_level",
        "total_weight_kg",
        "promised_delivery_date",
        "lines",
        "legs",
    ]
    assert list(ship["legs"][0]) == LEG_KEYS
    cust = _jsonl(out / "crm/customers.jsonl")[0]
    assert list(cust) == [
        "customer_id",
        "full_name",
        "email",
        "phone",
        "home_address",
        "tier",
        "language",
        "signup_at",
        "marketing_opt_in",
        "devices",
        "ip_addresses",
    ]
    review = _all_jsonl(out, "crm/reviews/*/reviews.jsonl")[0]
    assert list(review) == [
        "review_id",
        "order_id",
        "customer_id",
        "created_at",
        "contact_channel",
        "contact_reason",
        "rating",
        "comment",
    ]
    hook = _all_jsonl(out, "carriers/swiftparcel/*/webhooks.jsonl")[0]
    assert list(hook) == ["msg_id", "event", "carrier", "tracking_number", "checkpoint"]
    assert list(hook["checkpoint"]) == ["tag", "subtag", "message", "checkpoint_time", "location"]
    rail = (out / "carriers/eurohaul" / f"date={START}" / "events.csv").read_text()
    assert rail.splitlines()[0] == (
        "consignment_no;status_code;station_code;station_name;local_time;train_no;remarks"
    )


def test_order_totals_are_lines_plus_fee(clean) -> None:
    out, _ = clean
    for o in _all_jsonl(out, "oms/orders/*/orders.jsonl"):
        lines = sum(x["quantity"] * x["unit_price"] - x["discount"] for x in o["lines"])
        assert abs(lines + o["shipping_fee"] - o["order_total"]) < 0.011
        assert 1 <= len(o["lines"]) <= 6
        assert [x["line_no"] for x in o["lines"]] == list(range(1, len(o["lines"]) + 1))


def test_orders_mix_time_zones_and_promises(clean) -> None:
    out, _ = clean
    orders = _all_jsonl(out, "oms/orders/*/orders.jsonl")
    offsets = {o["order_ts"][-6:] for o in orders}
    assert {"+01:00", "+00:00"} <= offsets and len(offsets) >= 3
    assert {o["promise_type"] for o in orders} == {"next_day", "standard", "green"}
    assert sum(o["promo_code"] is not None for o in orders) > 0.05 * len(orders)
    differs = sum(o["billing_address"] != o["shipping_address"] for o in orders)
    assert 0.03 * len(orders) < differs < 0.4 * len(orders)


def test_peak_day_volume_is_more_than_twice_the_median(clean) -> None:
    out, _ = clean
    counts = {p.parent.name: len(_jsonl(p)) for p in out.glob("oms/orders/*/orders.jsonl")}
    median = sorted(counts.values())[len(counts) // 2]
    assert counts["date=2026-11-11"] > 2 * median


def test_shipments_reference_orders_and_number_their_legs(clean) -> None:
    out, _ = clean
    order_ids = {o["order_id"] for o in _all_jsonl(out, "oms/orders/*/orders.jsonl")}
    ships = _all_jsonl(out, "tms/shipments/*/shipments.jsonl")
    assert ships
    modes = set()
    for s in ships:
        assert s["order_id"] in order_ids
        assert [leg["leg_no"] for leg in s["legs"]] == list(range(1, len(s["legs"]) + 1))
        assert s["legs"][-1]["mode"] == "last_mile"
        for leg in s["legs"]:
            assert leg["vehicle_class"] in VEHICLES and leg["distance_km"] > 0
            assert leg["planned_arrival_at"] > leg["planned_departure_at"][:10]
            modes.add(leg["mode"])
    assert {"last_mile", "road"} <= modes
    per_order = {}
    for s in ships:
        per_order[s["order_id"]] = per_order.get(s["order_id"], 0) + 1
    assert max(per_order.values()) == 2  # stock-driven split shipments exist, never more


def test_carrier_events_reference_real_tracking_refs(clean, db) -> None:
    out, _ = clean
    refs = {
        leg["tracking_ref"]
        for s in _all_jsonl(out, "tms/shipments/*/shipments.jsonl")
        for leg in s["legs"]
    }
    seen = set()
    for p in out.glob("carriers/*/*/webhooks.jsonl"):
        seen |= {e["tracking_number"] for e in _jsonl(p)}
    for p in out.glob("carriers/*/*/events.jsonl"):
        seen |= {e["documentReferences"][0]["documentReferenceValue"] for e in _jsonl(p)}
    for p in out.glob("carriers/*/*/events.csv"):
        seen |= {r["consignment_no"] for r in csv.DictReader(p.open(), delimiter=";")}
    assert len(seen) > 1000
    assert seen <= refs


def test_carrier_feeds_carry_duplicates_late_arrivals_and_delivered_status(clean) -> None:
    out, _ = clean
    hooks = [
        (p.parent.name[5:], e)
        for p in sorted(out.glob("carriers/*/*/webhooks.jsonl"))
        for e in _jsonl(p)
    ]
    ids = [e["msg_id"] for _, e in hooks]
    assert len(ids) > len(set(ids))  # re-sent duplicates
    late = [
        1
        for day, e in hooks
        if e["checkpoint"]["checkpoint_time"][:10] < day
        and e["checkpoint"]["tag"] != "InfoReceived"
    ]
    assert len(late) > 0.005 * len(hooks)
    tags = {e["checkpoint"]["tag"] for _, e in hooks}
    assert {"InfoReceived", "OutForDelivery", "Delivered", "AttemptFail", "Exception"} <= tags
    anomalies = pq.read_table(out / "truth/event_anomalies.parquet").to_pandas()
    assert anomalies["duplicate"].any() and anomalies["late_arrival"].any()


def test_fraud_rate_patterns_and_labels(clean, db) -> None:
    out, _ = clean
    truth = pq.read_table(out / "truth/orders_truth.parquet").to_pandas()
    rate = truth["is_fraud"].mean()
    assert 0.01 <= rate <= 0.035
    assert set(truth["fraud_pattern"].dropna()) == {
        "ring",
        "account_takeover",
        "velocity_burst",
        "new_account_high_value",
    }
    labels = db.sql(f"""
        select c.label_type, c.reported_at, o.order_ts from
        read_csv('{out}/payments/chargebacks/*/*.csv', all_varchar=true) c
        join read_json('{out}/oms/orders/*/*.jsonl', columns={{'order_id': 'VARCHAR',
             'order_ts': 'VARCHAR'}}) o using (order_id)""").fetchall()
    assert labels
    for _, reported, ordered in labels:
        assert dt.datetime.fromisoformat(reported) > dt.datetime.fromisoformat(ordered)
    labelled = truth[truth["label_available_at"].notna()]
    assert labelled["is_fraud"].mean() > 0.5  # mostly fraud, some friendly fraud


def test_fraud_rings_share_devices_and_takeovers_come_from_far_away(clean) -> None:
    out, _ = clean
    truth = pq.read_table(out / "truth/orders_truth.parquet").to_pandas().set_index("order_id")
    orders = _all_jsonl(out, "oms/orders/*/orders.jsonl")
    accounts_per_device: dict[str, set] = {}
    for o in orders:
        if truth.loc[o["order_id"], "fraud_pattern"] == "ring":
            accounts_per_device.setdefault(o["device_id"], set()).add(o["customer_id"])
    assert max(len(v) for v in accounts_per_device.values()) >= 3
    ato = [o for o in orders if truth.loc[o["order_id"], "fraud_pattern"] == "account_takeover"]
    moved = sum(
        o["shipping_address"]["country_code"] != o["billing_address"]["country_code"] for o in ato
    )
    assert moved > 0.8 * len(ato)


def test_inventory_is_bounded_replenished_and_runs_out(clean, db) -> None:
    out, _ = clean
    stats = db.sql(f"""
        select count(distinct sku_id) filter (where warehouse_id = 'WH-PAR') forward_skus,
               count(distinct sku_id) filter (where warehouse_id = 'WH-ERF') central_skus,
               min(on_hand) min_on_hand, sum(replenished_qty) replenished,
               count(*) filter (where on_hand = 0) stockouts
        from read_csv('{out}/wms/inventory/*/*.csv')""").fetchone()
    forward, central, min_on_hand, replenished, stockouts = stats
    assert forward < central and forward <= 1500
    assert min_on_hand >= 0 and replenished > 0 and stockouts > 0
    cancels = db.sql(
        f"select reason, count(*) from read_csv('{out}/oms/cancellations/*/*.csv') group by 1"
    ).fetchall()
    assert {"customer_request", "out_of_stock"} <= {r for r, _ in cancels}


def test_ratings_follow_the_delivery_experience(clean) -> None:
    out, _ = clean
    ships = pq.read_table(out / "truth/shipments_truth.parquet").to_pandas()
    late_orders = set(ships.loc[ships["was_late"], "order_id"])
    reviews = _all_jsonl(out, "crm/reviews/*/reviews.jsonl")
    rated = [(r["order_id"] in late_orders, r["rating"]) for r in reviews if r["rating"]]
    late = [x for is_late, x in rated if is_late]
    on_time = [x for is_late, x in rated if not is_late]
    assert late and on_time
    assert sum(late) / len(late) < sum(on_time) / len(on_time) - 0.3
    assert any(r["contact_reason"] == "where_is_my_order" for r in reviews)
    assert all(r["rating"] is None for r in reviews if r["contact_reason"] != "review")
    assert ships["was_late"].mean() < 0.5


def test_clean_run_has_no_defects(clean) -> None:
    out, _ = clean
    assert pq.read_table(out / "truth/defects.parquet").num_rows == 0
    for p in out.glob("oms/orders/*/orders.jsonl"):
        for o in _jsonl(p):
            assert o["order_id"] and o["customer_id"] and o["channel"] != "kiosk"


def test_dirty_run_records_every_injected_defect(dirty) -> None:
    out, _ = dirty
    defects = pq.read_table(out / "truth/defects.parquet").to_pylist()
    kinds = {d["defect"] for d in defects}
    assert {
        "null_key",
        "missing_required_field",
        "unknown_enum",
        "out_of_range",
        "malformed_timestamp",
        "duplicate_key",
        "truncated_line",
    } <= kinds
    for d in defects:
        path = out / d["file"]
        if d["defect"] == "truncated_line":
            assert not path.read_bytes().endswith(b"\n")
            continue
        if not d["file"].endswith(".jsonl") or not d["file"].startswith("oms/orders"):
            continue
        lines = path.read_text(encoding="utf-8").splitlines()
        if d["record_no"] == len(lines) and not path.read_bytes().endswith(b"\n"):
            continue  # the defective record was also cut short
        rec = json.loads(lines[d["record_no"] - 1])
        if d["defect"] == "null_key":
            assert rec["order_id"] is None
        elif d["defect"] == "missing_required_field":
            assert rec["customer_id"] is None
        elif d["defect"] == "unknown_enum":
            assert rec["channel"] == "kiosk"
        elif d["defect"] == "out_of_range":
            assert rec["lines"][0]["quantity"] < 0
        elif d["defect"] == "duplicate_key":
            assert rec["order_id"] == d["record_id"]
            assert json.loads(lines[d["record_no"] - 2])["order_id"] == d["record_id"]


# The 1M-order budget (<= 2 min) is measured by `make bench` (BENCHMARKS.md), never asserted here.
