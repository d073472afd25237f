"""Arrow tables for shipments (legs nested) and the ground-truth Parquet files."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from . import geo
from .orders import FRAUD_PATTERNS, PROMISES, Orders
from .shipments import MODES, Legs, Shipments, node_index, node_names
from .textutil import cat, list_array, num_str, pick, struct_array
from .timeutil import date_array, iso_local, utc_offset_min
from .world import CARRIER_IDS, WAREHOUSES, World

VEHICLE = {0: "van_diesel_average", 2: "rail_freight", 4: "container_ship_average"}
REF_PREFIX = {
    "swiftparcel": "SWP",
    "colisrapide": "CR",
    "skybridge": "SKY",
    "bluemeridian": "BMLU",
    "transalprail": "70",
    "eurohaul": "EH",
    "iberiaroad": "IR",
}


def tracking_refs(legs: Legs) -> pa.Array:
    prefix = pick([REF_PREFIX[c] for c in CARRIER_IDS], legs.carrier)
    return cat(prefix, num_str(np.arange(len(legs.mode)) * 7 + 100_003, 10))


def vehicle_class(legs: Legs) -> pa.Array:
    v = np.full(len(legs.mode), "van_diesel_average", dtype=object)
    for m, name in VEHICLE.items():
        v[legs.mode == m] = name
    road = legs.mode == 1
    v[road] = np.where(legs.distance[road] > 250, "artic_gt33t", "rigid_7.5-17t")
    air = legs.mode == 3
    v[air] = np.where(legs.distance[air] > 3700, "air_long_haul", "air_short_haul")
    return pa.array(v, type=pa.string())


def _wh_of_city(world: World) -> dict[int, int]:
    return {int(c): i for i, c in enumerate(world.wh_city)}


def leg_struct(world: World, legs: Legs, refs: pa.Array) -> pa.StructArray:
    names, _ = node_names()
    wmap = _wh_of_city(world)
    o_name = np.array(names, dtype=object)[node_index(legs.o_kind, legs.o_city, wmap)]
    d_name = np.array(names, dtype=object)[node_index(legs.d_kind, legs.d_city, wmap)]
    o_off = utc_offset_min(geo.country_tz_rule_index(legs.o_cc), legs.plan_dep)
    d_off = utc_offset_min(geo.country_tz_rule_index(legs.d_cc), legs.plan_arr)
    return struct_array(
        [
            pa.array(legs.leg_no),
            pick(MODES, legs.mode),
            pick(CARRIER_IDS, legs.carrier),
            refs,
            vehicle_class(legs),
            pa.array(o_name, pa.string()),
            pa.array(np.round(legs.o_lat, 5)),
            pa.array(np.round(legs.o_lon, 5)),
            pa.array(legs.o_cc),
            pa.array(d_name, pa.string()),
            pa.array(np.round(legs.d_lat, 5)),
            pa.array(np.round(legs.d_lon, 5)),
            pa.array(legs.d_cc),
            pa.array(legs.distance),
            iso_local(legs.plan_dep, o_off),
            iso_local(legs.plan_arr, d_off),
        ],
        [
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
        ],
    )


def shipment_ids(n: int) -> pa.Array:
    return cat("SHP-", num_str(np.arange(1, n + 1), 8))


def shipments_table(
    world: World, o: Orders, s: Shipments, line_ship: np.ndarray, order_id: pa.Array, refs: pa.Array
) -> pa.Table:
    n = len(s.order)
    wh_tz = geo.country_tz_rule_index(geo.CITY_COUNTRY[world.wh_city[s.wh]])
    # lines of each shipment, in original line order
    sel = np.flatnonzero(line_ship >= 0)
    sel = sel[np.argsort(line_ship[sel], kind="stable")]
    counts = np.bincount(line_ship[sel], minlength=n)
    line_no = sel - np.repeat(o.line_off[:-1], o.f["n_lines"])[sel] + 1
    lines = struct_array(
        [
            pa.array(line_no),
            cat("SKU-", num_str(o.line_sku[sel] + 1, 6)),
            pa.array(o.line_qty[sel]),
        ],
        ["line_no", "sku_id", "quantity"],
    )
    leg_counts = np.bincount(s.legs.ship, minlength=n)
    return pa.table(
        {
            "shipment_id": shipment_ids(n),
            "order_id": order_id.take(pa.array(s.order)),
            "warehouse_id": pick([w[0] for w in WAREHOUSES], s.wh),
            "created_at": iso_local(s.created, utc_offset_min(wh_tz, s.created)),
            "service_level": pick(PROMISES, s.service),
            "total_weight_kg": s.weight,
            "promised_delivery_date": date_array(s.promised),
            "lines": list_array(
                pa.array(np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)), lines
            ),
            "legs": list_array(
                pa.array(np.concatenate([[0], np.cumsum(leg_counts)]).astype(np.int32)),
                leg_struct(world, s.legs, refs),
            ),
            "_t": s.created,
        }
    )


def _ts(utc: np.ndarray, valid: np.ndarray) -> pa.Array:
    return pa.array(np.where(valid, utc, 0), type=pa.timestamp("s", tz="UTC"), mask=~valid)


def orders_truth(o: Orders, order_id: pa.Array, lab: dict, cancel_reason: np.ndarray) -> pa.Table:
    fraud = o.f["fraud"]
    return pa.table(
        {
            "order_id": order_id,
            "is_fraud": fraud > 0,
            "fraud_pattern": pa.array(
                np.where(fraud > 0, np.array(FRAUD_PATTERNS)[fraud], None), type=pa.string()
            ),
            "fraud_group": pa.array(np.where(fraud > 0, o.f["group"], 0), mask=fraud == 0),
            "label_available_at": _ts(lab["first"], lab["first"] >= 0),
            "friendly_chargeback": lab["friendly"],
            "cancel_reason": pa.array(
                np.where(
                    cancel_reason >= 0,
                    np.array(
                        ["customer_request", "fraud_suspected", "out_of_stock", "payment_failed"]
                    )[np.maximum(cancel_reason, 0)],
                    None,
                ),
                type=pa.string(),
            ),
        }
    )


def shipments_truth(s: Shipments, t_end: int) -> pa.Table:
    n = len(s.order)
    kinds = []
    flags = [
        ("customs_hold", s.customs),
        ("damaged", s.damaged),
        ("lost", s.lost),
        ("address_issue", np.zeros(n, bool)),
        ("wrong_item", s.wrong_item),
    ]
    last = np.cumsum(np.bincount(s.legs.ship, minlength=n)) - 1
    flags[3] = ("address_issue", s.legs.address_issue[last])
    fails = s.legs.fails[last]
    flags.append(("failed_attempt", fails > 0))
    mat = np.stack([f for _, f in flags], axis=1)
    names = np.array([k for k, _ in flags], dtype=object)
    counts = mat.sum(axis=1)
    values = np.broadcast_to(names, mat.shape)[mat]
    kinds = list_array(
        pa.array(np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)),
        pa.array(values, pa.string()),
    )
    return pa.table(
        {
            "shipment_id": shipment_ids(n),
            "delivered_at": _ts(s.delivered, s.delivered >= 0),
            "was_late": s.late,
            "late_days": np.where(s.lost, -1, s.late_days),
            "failed_attempts": fails,
            "exception_kinds": kinds,
            "in_feed": s.created < t_end,
        }
    )


def legs_truth(legs: Legs, refs: pa.Array) -> pa.Table:
    ok = ~legs.lost & ~legs.extra["after_lost"]
    return pa.table(
        {
            "tracking_ref": refs,
            "actual_departure_at": _ts(legs.dep, ~legs.extra["after_lost"]),
            "actual_arrival_at": _ts(legs.arr, ok),
            "delay_hours": np.round(legs.delay_h, 2),
            "lost": legs.lost,
        }
    )
