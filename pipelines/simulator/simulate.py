"""Orchestration: build the world, run it, write the landing zone and the truth.

Each concern draws from its own random stream (``SeedSequence.spawn``), so changing, say, the
review model does not reshuffle orders or fraud for the same seed.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import events as ev
from . import feedback, fraud, inventory, shipments, tables
from . import orders as om
from .demand import build_calendar
from .dirty import DefectSpec, inject, negate_first_line_qty
from .textutil import cat, num_str, pick
from .timeutil import DAY, HOUR, date_array
from .world import (
    CARRIERS,
    WAREHOUSES,
    build_world,
    customer_ids,
    customer_table,
    set_capacity,
    warehouse_table,
)
from .writers import LandingWriter

STREAMS = [
    "world",
    "demand",
    "fraud",
    "orders",
    "lines",
    "cancel",
    "inventory",
    "shipments",
    "events",
    "labels",
    "reviews",
    "dirty",
    "crm",
]
FRAUD_RATE = 0.018
FEED_FILE = {
    "parcel_webhook_json": ("webhooks.jsonl", "json"),
    "dcsa_tnt_json": ("events.jsonl", "json"),
    "rail_csv": ("events.csv", "csv"),
}


@dataclass
class SimulationSummary:
    """What a run produced; ``rows`` maps a file kind to its record count."""

    orders: int
    days: int
    seed: int
    start: str
    dirty_rate: float
    rows: dict[str, int] = field(default_factory=dict)
    files_written: int = 0
    bytes_written: int = 0
    seconds: float = 0.0
    out_dir: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def _validate(orders: int, days: int, seed: int, start: dt.date, dirty_rate: float) -> None:
    if not isinstance(orders, int) or orders < 1:
        raise ValueError(f"orders must be an integer >= 1, got {orders!r}")
    if not isinstance(days, int) or not 1 <= days <= 3660:
        raise ValueError(f"days must be an integer between 1 and 3660, got {days!r}")
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if not isinstance(start, dt.date):
        raise ValueError(f"start must be a datetime.date, got {start!r}")
    if not 0.0 <= float(dirty_rate) <= 0.1:
        raise ValueError(f"dirty_rate must be between 0 and 0.1, got {dirty_rate!r}")


def simulate(
    out_dir: Path,
    orders: int = 200_000,
    days: int = 90,
    seed: int = 42,
    start: dt.date = dt.date(2026, 8, 20),
    dirty_rate: float = 0.0005,
) -> SimulationSummary:
    """Generate a seeded world into ``out_dir`` (landing zone + ``truth/``)."""
    _validate(orders, days, seed, start, dirty_rate)
    if isinstance(start, dt.datetime):
        start = start.date()
    t_start = time.perf_counter()
    out = Path(out_dir)
    rng = dict(
        zip(
            STREAMS,
            (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(len(STREAMS))),
            strict=True,
        )
    )
    w = build_world(rng["world"], orders, days, start)
    cal = build_calendar(rng["demand"], start, days)
    n_legit_c = w.n_customers
    frames = fraud.fraud_frames(rng["fraud"], w, cal, orders, FRAUD_RATE, n_legit_c)
    n_fraud = min(orders, sum(len(f["utc"]) for f in frames))
    if n_fraud == orders:  # tiny worlds: keep at least the legit majority
        frames = [{k: v[:0] for k, v in f.items()} for f in frames]
        n_fraud = 0
    legit = om.legit_frame(rng["orders"], w, cal, orders - n_fraud)
    f = om.merge([legit, *frames])
    _new_signups(rng["orders"], w, f, n_legit_c)
    o = om.finalize(rng["lines"], w, cal, f)
    reason, cancel_at = feedback.cancellations(rng["cancel"], o)
    dist = inventory.order_wh_distance(w, o)
    set_capacity(w, inventory.planning_capacity(w, o, dist))
    alloc = inventory.allocate(rng["inventory"], w, o, reason < 0, dist, days, cal.peak_factor)
    oos = alloc.oos_order
    reason[oos] = 2
    cancel_at[oos] = o.f["utc"][oos] + rng["cancel"].integers(HOUR // 2, 8 * HOUR, int(oos.sum()))
    ship = shipments.build(rng["shipments"], w, o, alloc, cal.peak_factor)
    lab = feedback.labels(rng["labels"], o, reason >= 0)

    writer = LandingWriter(out, start, days)
    _write_reference(writer, w, rng["crm"])
    order_id = _write_feeds(writer, w, o, cal, reason, cancel_at, alloc, ship, lab, rng, dirty_rate)
    if dirty_rate > 0:
        writer.truncate_last_lines(rng["dirty"], 3)
    _write_truth(writer, w, o, order_id, lab, reason, ship, n_legit_c)
    summary = SimulationSummary(
        orders=orders,
        days=days,
        seed=seed,
        start=start.isoformat(),
        dirty_rate=float(dirty_rate),
        rows=dict(sorted(writer.rows.items())),
        files_written=len(writer.files),
        out_dir=str(out),
    )
    summary.bytes_written = sum(p.stat().st_size for p in writer.files)
    summary.seconds = round(time.perf_counter() - t_start, 2)
    return summary


def _new_signups(rng: np.random.Generator, w, f: dict, n_legit_c: int) -> None:
    """About one in ten customers joins during the window, shortly before its first order."""
    new = rng.random(n_legit_c) < 0.10
    first = np.full(n_legit_c, np.iinfo(np.int64).max)
    legit = f["fraud"] == 0
    np.minimum.at(first, f["cust"][legit], f["utc"][legit])
    has = first < np.iinfo(np.int64).max
    gap = np.maximum(120, rng.exponential(1.5 * DAY, n_legit_c)).astype(np.int64)
    sel = new & has
    w.cust_signup[:n_legit_c][sel] = first[sel] - gap[sel]
    idle = new & ~has
    w.cust_signup[:n_legit_c][idle] = w.t0 + rng.integers(0, w.days * DAY, int(idle.sum()))
    w.new_in_window = np.zeros(w.n_customers, bool)
    w.new_in_window[:n_legit_c] = new


def _write_reference(writer: LandingWriter, w, rng: np.random.Generator) -> None:
    writer.write(warehouse_table(w), "reference/warehouses.csv", "csv", "warehouses")
    writer.write(w.tables["carriers"], "reference/carriers.csv", "csv", "carriers")
    writer.write(w.tables["skus"], "reference/skus.csv", "csv", "skus")
    writer.write(w.tables["ip_ranges"], "reference/ip_ranges.csv", "csv", "ip_ranges")
    writer.write(customer_table(w, rng), "crm/customers.jsonl", "json", "customers")


def _day(w, t: np.ndarray) -> np.ndarray:
    return (np.asarray(t) - w.t0) // DAY


def _write_feeds(writer, w, o, cal, reason, cancel_at, alloc, ship, lab, rng, rate) -> pa.Array:
    dr = rng["dirty"]
    order_tab = om.orders_table(w, o, cal)
    order_id = order_tab.column("order_id").combine_chunks()
    spec = DefectSpec("order_id", "customer_id", ("channel", "kiosk"), None, "order_ts")
    order_tab = inject(dr, order_tab, spec, rate, negate=negate_first_line_qty)
    day = np.repeat(_day(w, o.f["utc"]), _dup_counts(order_tab, o.n))
    writer.partitioned(order_tab, day, "oms/orders", "orders.jsonl", "json", "orders")

    canc = feedback.cancellation_table(o, reason, cancel_at, order_id)
    canc = canc.filter(pa.array(canc.column("_t").to_numpy() < w.t_end))
    canc = inject(
        dr,
        canc,
        DefectSpec("order_id", None, ("reason", "changed_mind"), None, "cancelled_at"),
        rate,
    )
    writer.partitioned(
        canc,
        _day(w, canc.column("_t").to_numpy()),
        "oms/cancellations",
        "cancellations.csv",
        "csv",
        "cancellations",
    )
    _write_inventory(writer, w, alloc, dr, rate)

    in_feed = ship.created < w.t_end
    legs = ship.legs
    refs = tables.tracking_refs(legs)
    st = tables.shipments_table(w, o, ship, alloc.line_ship, order_id, refs)
    st = st.filter(pa.array(in_feed))
    st = inject(
        dr,
        st,
        DefectSpec(
            "shipment_id", "order_id", ("service_level", "express"), "total_weight_kg", "created_at"
        ),
        rate,
    )
    writer.partitioned(
        st,
        _day(w, st.column("_t").to_numpy()),
        "tms/shipments",
        "shipments.jsonl",
        "json",
        "shipments",
    )
    _write_carriers(writer, w, ship, refs, rng)

    lt = feedback.label_table(o, lab, order_id, w.t_end)
    lt = inject(
        dr,
        lt,
        DefectSpec("label_id", "order_id", ("label_type", "dispute"), "amount", "reported_at"),
        rate,
    )
    writer.partitioned(
        lt,
        _day(w, lt.column("_t").to_numpy()),
        "payments/chargebacks",
        "chargebacks.csv",
        "csv",
        "chargebacks",
    )
    rv = feedback.reviews(rng["reviews"], w, o, ship, order_id, w.t_end)
    rv = inject(
        dr,
        rv,
        DefectSpec("review_id", "order_id", ("contact_channel", "fax"), "rating", "created_at"),
        rate,
    )
    writer.partitioned(
        rv, _day(w, rv.column("_t").to_numpy()), "crm/reviews", "reviews.jsonl", "json", "reviews"
    )
    writer._legs_refs = (legs, refs)
    return order_id


def _dup_counts(table: pa.Table, n: int) -> np.ndarray:
    """Rows per original record after duplicate injection (duplicates follow their original)."""
    marks = table.column("_defect").to_numpy(zero_copy_only=False)
    is_dup = marks == "duplicate_key"
    counts = np.ones(n, dtype=np.int64)
    orig = np.cumsum(~is_dup) - 1
    np.add.at(counts, orig[is_dup], 1)
    return counts


def _write_inventory(writer: LandingWriter, w, alloc, rng, rate: float) -> None:
    snaps = alloc.snapshot
    stocked = np.argwhere(w.stocked)  # (warehouse, sku) pairs in row-major order
    days = len(snaps["on_hand"])
    per_day = len(stocked)
    d = np.repeat(np.arange(days), per_day)
    wh_ids = [x[0] for x in WAREHOUSES]

    table = pa.table(
        {
            "snapshot_date": date_array(w.t0 // DAY + d),
            "warehouse_id": pick(wh_ids, np.tile(stocked[:, 0], days)),
            "sku_id": cat("SKU-", num_str(np.tile(stocked[:, 1], days) + 1, 6)),
            "on_hand": np.concatenate(snaps["on_hand"]),
            "reserved": np.concatenate(snaps["reserved"]),
            "inbound": np.concatenate(snaps["inbound"]),
            "replenished_qty": np.concatenate(snaps["replenished"]),
        }
    )
    key = cat(
        table.column("warehouse_id").combine_chunks(), "/", table.column("sku_id").combine_chunks()
    )
    table = table.append_column("_key", key)
    spec = DefectSpec("_key", "warehouse_id", None, "on_hand", None, duplicates=True)
    table = inject(rng, table, spec, rate)
    table = _null_key_is_sku(table)
    day = np.repeat(d, _dup_counts(table, len(d)))
    writer.partitioned(table, day, "wms/inventory", "inventory_snapshot.csv", "csv", "inventory")


def _null_key_is_sku(table: pa.Table) -> pa.Table:
    """The inventory key is (warehouse, sku): a 'null key' defect blanks the sku_id."""
    marks = table.column("_defect").to_numpy(zero_copy_only=False)
    mask = pa.array(marks == "null_key")
    sku = table.column("sku_id")
    new = pc.if_else(mask, pa.scalar(None, pa.string()), sku)
    return table.set_column(table.column_names.index("sku_id"), "sku_id", new)


def _write_carriers(writer: LandingWriter, w, ship, refs: pa.Array, rng) -> None:
    legs = ship.legs
    base = ev.milestones(rng["events"], legs, ship.created)
    noisy = ev.add_feed_noise(rng["events"], base, legs, w.t_end)
    names, _ = shipments.node_names()
    wmap = {int(c): i for i, c in enumerate(w.wh_city)}

    def node_idx(kind, city):
        return shipments.node_index(kind, city, wmap)

    anomalies = []
    for ci, c in enumerate(CARRIERS):
        sel = np.flatnonzero(legs.carrier[noisy.leg] == ci)
        sub = ev.Events(
            *(
                getattr(noisy, k)[sel]
                for k in (
                    "leg",
                    "kind",
                    "t",
                    "at_dest",
                    "received",
                    "duplicate",
                    "late",
                    "unmapped",
                    "id_a",
                    "id_b",
                )
            )
        )
        fmt = c[3]
        if fmt == "parcel_webhook_json":
            table = ev.parcel_table(sub, legs, refs, c[0])
        elif fmt == "dcsa_tnt_json":
            table = ev.dcsa_table(sub, legs, refs)
        else:
            table = ev.rail_table(sub, legs, refs, names, node_idx)
        fname, kind = FEED_FILE[fmt]
        writer.partitioned(
            table,
            _day(w, sub.received),
            f"carriers/{c[0]}",
            fname,
            kind,
            "carrier_events",
            ";" if kind == "csv" else ",",
        )
        flag = sub.duplicate | sub.late | sub.unmapped
        if flag.any():
            anomalies.append(
                pa.table(
                    {
                        "carrier_id": pa.array(np.full(int(flag.sum()), c[0])),
                        "tracking_ref": refs.take(pa.array(sub.leg[flag])),
                        "event_kind": pa.array(np.array(ev.KIND_NAMES)[sub.kind[flag]]),
                        "event_at": pa.array(sub.t[flag], pa.timestamp("s", tz="UTC")),
                        "received_at": pa.array(sub.received[flag], pa.timestamp("s", tz="UTC")),
                        "duplicate": sub.duplicate[flag],
                        "late_arrival": sub.late[flag],
                        "unmapped_code": sub.unmapped[flag],
                    }
                )
            )
    writer._anomalies = anomalies


def _write_truth(writer: LandingWriter, w, o, order_id, lab, reason, ship, n_legit_c) -> None:
    writer.parquet(tables.orders_truth(o, order_id, lab, reason), "truth/orders_truth.parquet")
    st = tables.shipments_truth(ship, w.t_end)
    st = st.add_column(1, "order_id", order_id.take(pa.array(ship.order)))
    writer.parquet(st, "truth/shipments_truth.parquet")
    legs, refs = writer._legs_refs
    writer.parquet(tables.legs_truth(legs, refs), "truth/legs_truth.parquet")
    if writer._anomalies:
        writer.parquet(pa.concat_tables(writer._anomalies), "truth/event_anomalies.parquet")
    fraud_acc = np.arange(w.n_customers) >= n_legit_c
    writer.parquet(
        pa.table(
            {
                "customer_id": customer_ids(np.arange(w.n_customers)),
                "is_fraud_account": fraud_acc,
                "joined_in_window": w.new_in_window | (fraud_acc & (w.cust_signup >= w.t0)),
            }
        ),
        "truth/customers_truth.parquet",
    )
    defects = writer.defects
    writer.parquet(
        pa.table(
            {
                "file": pa.array([d["file"] for d in defects], pa.string()),
                "record_no": pa.array([d["record_no"] for d in defects], pa.int64()),
                "record_id": pa.array([d["record_id"] for d in defects], pa.string()),
                "defect": pa.array([d["defect"] for d in defects], pa.string()),
            }
        ),
        "truth/defects.parquet",
    )
