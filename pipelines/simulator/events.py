"""Carrier tracking events in each carrier's own format, with real feed noise.

Milestones are first derived per leg in one internal vocabulary (times come from the actual
leg schedule, so delays, holds and failed attempts show up as event times), then rendered as
parcel webhooks, DCSA Track & Trace events or the rail/road operator's semicolon CSV. The
feed noise ingestion has to live with is added last: delivery lag, late (out-of-order)
deliveries into a later day's file, re-sent duplicates and the odd status nobody mapped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import geo
from .shipments import AIR, LM, NODE_ADDR, RAIL, ROAD, SEA, Legs
from .textutil import cat, hex_str, list_array, num_str, struct_array
from .timeutil import DAY, HOUR, MINUTE, iso_local, rail_local, utc_offset_min
from .world import CARRIERS

(
    INFO,
    DEPART,
    PASS,
    ARRIVE,
    OFD,
    ATTEMPT,
    DELIVERED,
    PICKUP,
    EXC_ADDR,
    EXC_DAMAGED,
    EXC_LOST,
    HOLD,
    RELEASE,
    HANDOVER,
    LOAD,
    DISCHARGE,
    GATE_IN,
    ESTIMATE,
    DELAY,
    DEPOT,
) = range(20)
KIND_NAMES = [
    "info",
    "depart",
    "pass",
    "arrive",
    "out_for_delivery",
    "attempt_fail",
    "delivered",
    "pickup_available",
    "exception_address",
    "exception_damaged",
    "exception_lost",
    "customs_hold",
    "customs_release",
    "handover",
    "load",
    "discharge",
    "gate_in",
    "estimate",
    "delay",
    "depot",
]

DUPLICATE_RATE = 0.015
LATE_DELIVERY_RATE = 0.02
UNMAPPED_RATE = 0.0015


@dataclass
class Events:
    leg: np.ndarray
    kind: np.ndarray
    t: np.ndarray
    at_dest: np.ndarray
    received: np.ndarray | None = None
    duplicate: np.ndarray | None = None
    late: np.ndarray | None = None
    unmapped: np.ndarray | None = None
    id_a: np.ndarray | None = None  # random id bits; a re-sent duplicate keeps its original's
    id_b: np.ndarray | None = None


def milestones(rng: np.random.Generator, legs: Legs, created: np.ndarray) -> Events:
    """Internal events per leg; lost legs stop, legs after a lost one have none."""
    parts: list[tuple[np.ndarray, int, np.ndarray, bool]] = []
    n = len(legs.mode)
    idx = np.arange(n)
    alive = ~legs.extra["after_lost"]
    ok = alive & ~legs.lost  # legs that complete
    cr = created[legs.ship]

    def add(mask, kind, t, at_dest):
        parts.append((idx[mask], kind, np.asarray(t)[mask], at_dest))

    parcel = (legs.mode == LM) | (legs.mode == AIR)
    add(alive, INFO, cr + rng.integers(1, 25, n) * MINUTE, False)
    add(alive & (legs.mode != LM), DEPART, legs.dep, False)
    add(alive & (legs.mode == LM), DEPOT, legs.dep - 45 * MINUTE, False)
    add(alive & (legs.mode == LM), OFD, legs.dep, False)
    long = np.isin(legs.mode, [ROAD, RAIL]) & (legs.distance > 400)
    add(alive & long, PASS, (legs.dep + legs.arr) // 2, False)
    add(
        alive & np.isin(legs.mode, [ROAD, RAIL]) & (legs.delay_h > 0),
        DELAY,
        legs.dep + (legs.arr - legs.dep) // 3,
        False,
    )
    add(ok & (legs.mode != LM), ARRIVE, legs.arr, True)
    add(
        ok & np.isin(legs.mode, [ROAD, RAIL, SEA]),
        HANDOVER,
        np.maximum(legs.arr + HOUR, legs.hold_until),
        True,
    )
    for k in (0, 1):
        add(ok & (legs.fails > k), ATTEMPT, legs.first_attempt + k * DAY, True)
    add(ok & legs.pickup, PICKUP, legs.first_attempt + legs.fails * DAY - 3 * HOUR, True)
    add(ok & legs.address_issue, EXC_ADDR, legs.first_attempt + legs.fails * DAY, True)
    add(ok & (legs.mode == LM), DELIVERED, legs.arr, True)
    add(
        alive & legs.damaged,
        EXC_DAMAGED,
        np.where(legs.lost, legs.dep, legs.arr) - 20 * MINUTE,
        True,
    )
    add(alive & legs.lost & parcel, EXC_LOST, legs.lost_at, False)
    add(alive & legs.lost & ~parcel & (legs.mode != SEA), DELAY, legs.lost_at, False)
    hold = ok & (legs.hold_until > 0)
    add(hold, HOLD, legs.arr + 2 * HOUR, True)
    add(hold & parcel, RELEASE, legs.hold_until, True)
    sea = alive & (legs.mode == SEA)
    add(sea, GATE_IN, legs.dep - 30 * HOUR, False)
    add(sea, LOAD, legs.dep - 6 * HOUR, False)
    add(sea & ok, DISCHARGE, legs.arr + 8 * HOUR, True)
    add(sea, ESTIMATE, legs.plan_arr + (0.6 * legs.delay_h * HOUR).astype(np.int64), True)
    leg = np.concatenate([p[0] for p in parts])
    kind = np.concatenate([np.full(len(p[0]), p[1], np.int8) for p in parts])
    t = np.concatenate([p[2] for p in parts]).astype(np.int64)
    at_dest = np.concatenate([np.full(len(p[0]), p[3]) for p in parts])
    order = np.lexsort((kind, t, leg))
    return Events(leg[order], kind[order], t[order], at_dest[order])


def add_feed_noise(rng: np.random.Generator, ev: Events, legs: Legs, t_end: int) -> Events:
    """Delivery lag, late arrivals, duplicates, unmapped codes; drop what arrives after the end."""
    n = len(ev.t)
    lag = rng.lognormal(np.log(8 * MINUTE), 1.0, n).astype(np.int64)
    # estimates are published mid-voyage, long before the arrival they predict
    est = ev.kind == ESTIMATE
    mid = (legs.dep[ev.leg] + legs.arr[ev.leg]) // 2
    base = np.where(est, mid, ev.t)
    late = rng.random(n) < LATE_DELIVERY_RATE
    received = base + lag + late * rng.integers(DAY, 3 * DAY, n)
    unmapped = rng.random(n) < UNMAPPED_RATE
    dup = np.flatnonzero(rng.random(n) < DUPLICATE_RATE)
    sel = np.concatenate([np.arange(n), dup])
    rec = np.concatenate([received, received[dup] + rng.integers(MINUTE, 30 * HOUR, len(dup))])
    is_dup = np.concatenate([np.zeros(n, bool), np.ones(len(dup), bool)])
    keep = rec < t_end
    sel, rec, is_dup = sel[keep], rec[keep], is_dup[keep]
    order = np.lexsort((is_dup, sel, rec))
    sel, rec, is_dup = sel[order], rec[order], is_dup[order]
    ida, idb = event_ids(rng, n)
    return Events(
        ev.leg[sel],
        ev.kind[sel],
        ev.t[sel],
        ev.at_dest[sel],
        rec,
        is_dup,
        late[sel],
        unmapped[sel],
        ida[sel],
        idb[sel],
    )


def event_ids(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    return (
        rng.integers(0, 2**63, n, dtype=np.int64).astype(np.uint64),
        rng.integers(0, 2**63, n, dtype=np.int64).astype(np.uint64),
    )


def _location(ev: Events, legs: Legs):
    city = np.where(ev.at_dest, legs.d_city[ev.leg], legs.o_city[ev.leg])
    cc = np.where(ev.at_dest, legs.d_cc[ev.leg], legs.o_cc[ev.leg])
    lat = np.where(ev.at_dest, legs.d_lat[ev.leg], legs.o_lat[ev.leg])
    lon = np.where(ev.at_dest, legs.d_lon[ev.leg], legs.o_lon[ev.leg])
    kind = np.where(ev.at_dest, legs.d_kind[ev.leg], legs.o_kind[ev.leg])
    off = utc_offset_min(geo.country_tz_rule_index(cc), ev.t)
    return city, cc, np.round(lat, 3), np.round(lon, 3), kind, off


PARCEL_CODES = {
    INFO: ("InfoReceived", "InfoReceived_001", "Shipment information received"),
    DEPART: ("InTransit", "InTransit_002", "Departed from facility"),
    DEPOT: ("InTransit", "InTransit_007", "Arrived at delivery depot"),
    ARRIVE: ("InTransit", "InTransit_003", "Arrived at destination gateway"),
    OFD: ("OutForDelivery", "OutForDelivery_001", "Out for delivery"),
    ATTEMPT: ("AttemptFail", "AttemptFail_001", "Recipient not available"),
    DELIVERED: ("Delivered", "Delivered_001", "Delivered"),
    PICKUP: ("AvailableForPickup", "AvailableForPickup_001", "Available at pickup point"),
    EXC_ADDR: ("Exception", "Exception_004", "Address incomplete, contacting recipient"),
    EXC_DAMAGED: ("Exception", "Exception_007", "Parcel damaged in transit"),
    EXC_LOST: ("Exception", "Exception_011", "Parcel could not be located"),
    HOLD: ("Exception", "Exception_013", "Held by customs"),
    RELEASE: ("InTransit", "InTransit_004", "Customs cleared"),
}
UNMAPPED_PARCEL = ("Pending", "Pending_002", "Status update")


def _codes(table: dict, kind: np.ndarray, unmapped: np.ndarray, fallback: tuple, col: int):
    keys = sorted(table)
    lut = np.empty(max(keys) + 1, dtype=object)
    for k in keys:
        lut[k] = table[k][col]
    vals = lut[kind]
    vals = np.where(unmapped, fallback[col], vals)
    return pa.array(vals, type=pa.string())


def parcel_table(ev: Events, legs: Legs, refs: pa.Array, carrier_id: str) -> pa.Table:
    city, cc, lat, lon, _, off = _location(ev, legs)
    ids = hex_str(ev.id_a, "msg_")
    checkpoint = struct_array(
        [_codes(PARCEL_CODES, ev.kind, ev.unmapped, UNMAPPED_PARCEL, i) for i in range(3)]
        + [
            iso_local(ev.t, off),
            struct_array(
                [pa.array(geo.CITY_NAMES[city]), pa.array(cc), pa.array(lat), pa.array(lon)],
                ["city", "country_iso2", "lat", "lon"],
            ),
        ],
        ["tag", "subtag", "message", "checkpoint_time", "location"],
    )
    n = len(ev.t)
    return pa.table(
        {
            "msg_id": ids,
            "event": pa.array(np.full(n, "tracking_update")),
            "carrier": pa.array(np.full(n, carrier_id)),
            "tracking_number": refs.take(pa.array(ev.leg)),
            "checkpoint": checkpoint,
        }
    )


DCSA = {  # kind -> eventType, classifier, transport code, equipment code
    INFO: ("SHIPMENT", "ACT", None, None),
    GATE_IN: ("EQUIPMENT", "ACT", None, "GTIN"),
    LOAD: ("EQUIPMENT", "ACT", None, "LOAD"),
    DEPART: ("TRANSPORT", "ACT", "DEPA", None),
    ESTIMATE: ("TRANSPORT", "EST", "ARRI", None),
    ARRIVE: ("TRANSPORT", "ACT", "ARRI", None),
    DISCHARGE: ("EQUIPMENT", "ACT", None, "DISC"),
    HOLD: ("EQUIPMENT", "ACT", None, "HOLD"),
    EXC_DAMAGED: ("EQUIPMENT", "ACT", None, "INSP"),
    HANDOVER: ("EQUIPMENT", "ACT", None, "GTOT"),
}
UNMAPPED_DCSA = ("EQUIPMENT", "ACT", None, "STUF")


def dcsa_table(ev: Events, legs: Legs, refs: pa.Array) -> pa.Table:
    city, cc, _, _, _, off = _location(ev, legs)
    n = len(ev.t)
    ha, hb = hex_str(ev.id_a), hex_str(ev.id_b)
    uuid = cat(
        pc.utf8_slice_codeunits(ha, 0, 8),
        "-",
        pc.utf8_slice_codeunits(ha, 8, 12),
        "-4",
        pc.utf8_slice_codeunits(ha, 13, 16),
        "-a",
        pc.utf8_slice_codeunits(hb, 1, 4),
        "-",
        pc.utf8_slice_codeunits(hb, 4, 16),
    )
    cols = [_codes(DCSA, ev.kind, ev.unmapped, UNMAPPED_DCSA, i) for i in range(4)]
    shipment_code = pa.array(np.where(ev.kind == INFO, "CONF", None), type=pa.string())
    equip = cat("BMCU", num_str(legs.ship[ev.leg] % 9_000_000 + 1_000_000, 7))
    equip = pc.if_else(
        pa.array(pc.equal(cols[0], "EQUIPMENT")), equip, pa.scalar(None, pa.string())
    )
    facility = np.char.add("Port of ", geo.CITY_NAMES[city].astype(str))
    call = struct_array(
        [pa.array(geo.CITY_LOCODE[city]), pa.array(np.full(n, "VESSEL")), pa.array(facility)],
        ["UNLocationCode", "modeOfTransport", "facilityName"],
    )
    docs = struct_array(
        [pa.array(np.full(n, "BKG")), refs.take(pa.array(ev.leg))],
        ["documentReferenceType", "documentReferenceValue"],
    )
    return pa.table(
        {
            "eventID": uuid,
            "eventType": cols[0],
            "eventClassifierCode": cols[1],
            "eventDateTime": iso_local(ev.t, off),
            "eventCreatedDateTime": iso_local(ev.received, np.zeros(n, np.int32)),
            "transportEventTypeCode": cols[2],
            "equipmentEventTypeCode": cols[3],
            "shipmentEventTypeCode": shipment_code,
            "equipmentReference": equip,
            "transportCall": call,
            "documentReferences": list_array(pa.array(np.arange(n + 1, dtype=np.int32)), docs),
        }
    )


RAIL_CODES = {
    INFO: ("AN",),
    DEPART: ("AB",),
    PASS: ("UB",),
    ARRIVE: ("AK",),
    HANDOVER: ("ZU",),
    DELAY: ("ST",),
    EXC_DAMAGED: ("BS",),
    HOLD: ("ST",),
}
UNMAPPED_RAIL = ("RV",)


def rail_table(ev: Events, legs: Legs, refs: pa.Array, names: list[str], node_idx) -> pa.Table:
    city, cc, _, _, kind, off = _location(ev, legs)
    n = len(ev.t)
    # the "passed" station is the city nearest to the middle of the lane
    mid = ev.kind == PASS
    if mid.any():
        ml = (legs.o_lat[ev.leg[mid]] + legs.d_lat[ev.leg[mid]]) / 2
        mo = (legs.o_lon[ev.leg[mid]] + legs.d_lon[ev.leg[mid]]) / 2
        d = geo.haversine_km(ml[:, None], mo[:, None], geo.CITY_LAT[None], geo.CITY_LON[None])
        city[mid] = np.argmin(d, axis=1)
        cc[mid] = geo.CITY_COUNTRY[city[mid]]
        kind = kind.copy()
        kind[mid] = 1
        off[mid] = utc_offset_min(geo.country_tz_rule_index(cc[mid]), ev.t[mid])
    station_name = pa.array(np.array(names, dtype=object)[node_idx(kind, city)], type=pa.string())
    delay = legs.delay_h[ev.leg]
    remarks = np.full(n, None, dtype=object)
    is_delay = ev.kind == DELAY
    if is_delay.any():  # numpy's string functions fail on an empty array (a small world)
        hours = np.char.replace(np.round(delay[is_delay], 1).astype(str), ".", ",")
        remarks[is_delay] = np.char.add(np.char.add("Verspätung ", hours), " h")
    remarks[is_delay & legs.lost[ev.leg]] = "Sendung nicht auffindbar"
    remarks[ev.kind == EXC_DAMAGED] = "Beschädigung festgestellt"
    remarks[ev.kind == HOLD] = "Zollkontrolle"
    rail = legs.mode[ev.leg] == RAIL
    trip = (legs.dep[ev.leg] // DAY * 7 + legs.o_city[ev.leg] * 31 + legs.d_city[ev.leg]) % 90000
    train = cat(pa.array(np.where(rail, "TAC ", "LKW-")), num_str(trip + 10000))
    return pa.table(
        {
            "consignment_no": refs.take(pa.array(ev.leg)),
            "status_code": _codes(RAIL_CODES, ev.kind, ev.unmapped, UNMAPPED_RAIL, 0),
            "station_code": pa.array(geo.CITY_LOCODE[city]),
            "station_name": station_name,
            "local_time": rail_local(ev.t, off),
            "train_no": train,
            "remarks": pa.array(remarks, type=pa.string()),
        }
    )


def carrier_formats() -> dict[int, str]:
    return {i: c[3] for i, c in enumerate(CARRIERS)}


__all__ = [
    "Events",
    "milestones",
    "add_feed_noise",
    "parcel_table",
    "dcsa_table",
    "rail_table",
    "KIND_NAMES",
    "NODE_ADDR",
]
