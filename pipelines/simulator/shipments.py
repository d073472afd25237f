"""Fulfilment: routes, legs, planned and actual times, exceptions and delivery outcomes.

Every shipment gets up to three legs: an optional line-haul (road, or rail for long green
lanes), an intercontinental sea or air leg for destinations outside the EU, and the last mile.
The same schedule function produces the *plan* (no disruption) and the *actuals* (with
carrier-, lane- and peak-dependent delays, customs holds, failed attempts), so a late leg
pushes every later leg: a missed sailing waits for next week's vessel, a late truck misses
the morning van round.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import geo
from .inventory import Allocation
from .orders import Orders
from .timeutil import DAY, HOUR, MINUTE, local_day, utc_offset_min
from .world import CARRIER_DELAY, CARRIER_IDS, WAREHOUSES, World

MODES = ["last_mile", "road", "rail", "air", "sea"]
LM, ROAD, RAIL, AIR, SEA = range(5)
DETOUR = np.array([1.4, 1.25, 1.3, 1.05, 1.5])
SPEED_KMH = np.array([30.0, 65.0, 45.0, 780.0, 32.0])
DELAY_MEDIAN_H = np.array([20.0, 5.0, 14.0, 10.0, 60.0])
HANDLING_H = np.array([1.0, 1.0, 2.0, 5.0, 36.0])  # after arriving by this mode
CARRIER = {c: i for i, c in enumerate(CARRIER_IDS)}
LM_CARRIER_BY_COUNTRY = {
    "FR": "colisrapide",
    "IT": "colisrapide",
    "ES": "colisrapide",
    "PT": "colisrapide",
}
# node kinds for naming: warehouse, hub, port, air gateway, customer address
NODE_WH, NODE_HUB, NODE_PORT, NODE_AIR, NODE_ADDR = range(5)


@dataclass
class Legs:
    """One row per leg (flattened), ordered by shipment then leg number."""

    ship: np.ndarray
    leg_no: np.ndarray
    mode: np.ndarray
    carrier: np.ndarray
    o_city: np.ndarray
    d_city: np.ndarray
    o_kind: np.ndarray
    d_kind: np.ndarray
    o_lat: np.ndarray
    o_lon: np.ndarray
    d_lat: np.ndarray
    d_lon: np.ndarray
    o_cc: np.ndarray
    d_cc: np.ndarray
    distance: np.ndarray
    plan_dep: np.ndarray
    plan_arr: np.ndarray
    dep: np.ndarray
    arr: np.ndarray
    delay_h: np.ndarray
    hold_until: np.ndarray  # customs release (0 = no hold), on the arrival of this leg
    damaged: np.ndarray
    lost: np.ndarray
    lost_at: np.ndarray
    fails: np.ndarray  # failed delivery attempts (last mile)
    address_issue: np.ndarray
    pickup: np.ndarray  # ended at a pickup point after failed attempts
    first_attempt: np.ndarray
    extra: dict = field(default_factory=dict)


@dataclass
class Shipments:
    order: np.ndarray
    wh: np.ndarray
    created: np.ndarray
    service: np.ndarray
    weight: np.ndarray
    promised: np.ndarray
    delivered: np.ndarray  # UTC seconds, -1 = never (lost)
    late: np.ndarray
    late_days: np.ndarray
    damaged: np.ndarray
    lost: np.ndarray
    wrong_item: np.ndarray
    customs: np.ndarray
    legs: Legs


def _next_slot(t: np.ndarray, hour: float, skip_sunday: bool = False) -> np.ndarray:
    day = t // DAY
    slot = day * DAY + int(hour * HOUR)
    slot = np.where(slot < t, slot + DAY, slot)
    if skip_sunday:
        slot = np.where(((slot // DAY) + 3) % 7 == 6, slot + DAY, slot)
    return slot


def _next_sailing(t: np.ndarray) -> np.ndarray:
    """Weekly vessel: Wednesdays 12:00 UTC."""
    day = t // DAY
    wd = (day + 3) % 7
    slot = (day + (2 - wd) % 7) * DAY + 12 * HOUR
    return np.where(slot < t, slot + 7 * DAY, slot)


def _departure(mode: np.ndarray, ready: np.ndarray) -> np.ndarray:
    return np.select(
        [mode == LM, mode == ROAD, mode == RAIL, mode == AIR, mode == SEA],
        [
            _next_slot(ready + HOUR, 6, skip_sunday=True),
            _next_slot(ready + 30 * MINUTE, 18),
            _next_slot(ready + HOUR, 20),
            _next_slot(ready + 2 * HOUR, 22),
            _next_sailing(ready + DAY),
        ],
    )


def _route(world: World, o: Orders, a: Allocation, rng: np.random.Generator) -> dict:
    """Nodes of each shipment's route as (n, 4) matrices (up to 3 legs = 4 nodes)."""
    book = world.addresses.freeze()
    n = len(a.ship_order)
    addr = o.f["ship"][a.ship_order]
    alat, alon, acc = book["lat"][addr], book["lon"][addr], book["country"][addr]
    acity = book["city"][addr]
    wcity = world.wh_city[a.ship_wh]
    wlat, wlon = geo.CITY_LAT[wcity], geo.CITY_LON[wcity]
    eu = geo.CITY_EU[acity]
    hub = np.empty(n, dtype=np.int64)
    for s in range(0, n, 200_000):
        e = min(n, s + 200_000)
        hub[s:e] = geo.nearest_city_in_country(alat[s:e], alon[s:e], acc[s:e])
    d_direct = geo.haversine_km(wlat, wlon, alat, alon)
    direct = eu & (((d_direct <= 200) & (geo.CITY_COUNTRY[wcity] == acc)) | (hub == wcity))
    service = o.f["promise"][a.ship_order]
    d_hub = geo.haversine_km(wlat, wlon, geo.CITY_LAT[hub], geo.CITY_LON[hub])
    no_rail = np.isin(acc, ["IE"]) | (geo.CITY_COUNTRY[wcity] == "IE")
    p_rail = np.where(service == 2, 0.75, np.where(service == 1, 0.2, 0.0))
    rail = (d_hub >= 550) & ~no_rail & (rng.random(n) < p_rail)
    sea = ~eu & (service == 2)
    port = _nearest_named(wlat, wlon, geo.EU_PORTS)
    far_port = np.array([geo.CITY_INDEX[geo.OVERSEAS_PORT.get(c, "New York")] for c in acc])
    far_air = np.array([geo.CITY_INDEX[geo.OVERSEAS_AIRPORT.get(c, "New York")] for c in acc])
    leipzig = geo.CITY_INDEX[geo.EU_AIR_HUB]
    # node city / kind per position; the customer address is flagged with kind NODE_ADDR
    city = np.full((n, 4), -1)
    kind = np.full((n, 4), -1)
    mode = np.full((n, 3), -1)
    city[:, 0], kind[:, 0] = wcity, NODE_WH
    m_a = direct
    city[m_a, 1], kind[m_a, 1], mode[m_a, 0] = acity[m_a], NODE_ADDR, LM
    m_b = eu & ~direct
    city[m_b, 1], kind[m_b, 1] = hub[m_b], NODE_HUB
    mode[m_b, 0] = np.where(rail[m_b], RAIL, ROAD)
    city[m_b, 2], kind[m_b, 2], mode[m_b, 1] = acity[m_b], NODE_ADDR, LM
    for m, gate, gkind, far, fkind, fmode in (
        (sea, port, NODE_PORT, far_port, NODE_PORT, SEA),
        (~eu & ~sea, np.full(n, leipzig), NODE_AIR, far_air, NODE_AIR, AIR),
    ):
        city[m, 1], kind[m, 1], mode[m, 0] = gate[m], gkind, ROAD
        city[m, 2], kind[m, 2], mode[m, 1] = far[m], fkind, fmode
        city[m, 3], kind[m, 3], mode[m, 2] = acity[m], NODE_ADDR, LM
    lat = np.where(kind == NODE_ADDR, alat[:, None], geo.CITY_LAT[np.maximum(city, 0)])
    lon = np.where(kind == NODE_ADDR, alon[:, None], geo.CITY_LON[np.maximum(city, 0)])
    lat[:, 0], lon[:, 0] = wlat, wlon
    return {
        "city": city,
        "kind": kind,
        "mode": mode,
        "lat": lat,
        "lon": lon,
        "eu": eu,
        "service": service,
        "acc": acc,
    }


def _nearest_named(lat: np.ndarray, lon: np.ndarray, names: list[str]) -> np.ndarray:
    idx = np.array([geo.CITY_INDEX[c] for c in names])
    d = geo.haversine_km(
        lat[:, None], lon[:, None], geo.CITY_LAT[idx][None], geo.CITY_LON[idx][None]
    )
    return idx[np.argmin(d, axis=1)]


def _carriers(rng: np.random.Generator, r: dict) -> np.ndarray:
    n = len(r["eu"])
    cc = geo.CITY_COUNTRY[np.maximum(r["city"], 0)]
    lm_default = np.where(
        np.isin(r["acc"], list(LM_CARRIER_BY_COUNTRY)),
        CARRIER["colisrapide"],
        CARRIER["swiftparcel"],
    )
    swap = rng.random(n) < 0.15  # shops split volume between parcel carriers
    lm = np.where(swap, CARRIER["swiftparcel"] + CARRIER["colisrapide"] - lm_default, lm_default)
    lm = np.where(
        r["eu"], lm, np.where(r["mode"][:, 1] == AIR, CARRIER["skybridge"], CARRIER["swiftparcel"])
    )
    iberia = np.isin(cc[:, 0], ["ES", "PT"]) | np.isin(cc[:, 1], ["ES", "PT"])
    road = np.where(iberia, CARRIER["iberiaroad"], CARRIER["eurohaul"])
    mode = r["mode"]
    out = np.select(
        [mode == LM, mode == ROAD, mode == RAIL, mode == AIR, mode == SEA],
        [
            lm[:, None],
            road[:, None],
            CARRIER["transalprail"],
            CARRIER["skybridge"],
            CARRIER["bluemeridian"],
        ],
        -1,
    )
    return out


def build(
    rng: np.random.Generator, world: World, o: Orders, a: Allocation, peak: np.ndarray
) -> Shipments:
    n = len(a.ship_order)
    r = _route(world, o, a, rng)
    mode = r["mode"]
    carrier = _carriers(rng, r)
    gc = geo.haversine_km(r["lat"][:, :3], r["lon"][:, :3], r["lat"][:, 1:], r["lon"][:, 1:])
    dist = np.where(mode >= 0, np.maximum(1.0, gc * DETOUR[np.maximum(mode, 0)]), 0)
    # shipment creation: picking after the order, not before the capacity queue lets it out
    ord_utc = o.f["utc"][a.ship_order]
    pick = rng.lognormal(np.log(2.5 * HOUR), 0.5, n).astype(np.int64)
    slot = world.t0 + a.ship_dispatch_day * DAY + 6 * HOUR + rng.integers(0, 11 * HOUR, n)
    created = np.where(a.ship_dispatch_day > o.f["day"][a.ship_order], slot, ord_utc + pick)
    plan_dur = _durations(rng, mode, dist, noise=False)
    plan_dep, plan_arr = _schedule(mode, created, plan_dur, np.zeros((n, 3)))
    delay_h = _delays(rng, world, mode, carrier, r, a, peak)
    hold = np.zeros((n, 3))
    customs = ~r["eu"] & (rng.random(n) < 0.12)
    hold[customs, 1] = rng.uniform(20, 140, int(customs.sum()))
    act_dur = _durations(rng, mode, dist, noise=True) + delay_h * HOUR
    dep, arr = _schedule(mode, created, act_dur, hold)
    return _outcomes(
        rng,
        world,
        o,
        a,
        r,
        mode,
        carrier,
        dist,
        created,
        plan_dep,
        plan_arr,
        dep,
        arr,
        delay_h,
        hold,
        customs,
    )


def _durations(rng, mode: np.ndarray, dist: np.ndarray, noise: bool) -> np.ndarray:
    m = np.maximum(mode, 0)
    base = dist / SPEED_KMH[m] * HOUR + np.array([0, 1, 4, 2, 0])[m] * HOUR
    if noise:
        base = base * rng.lognormal(0, 0.10, mode.shape)
        # a van round reaches a given address 1.5 h to 10 h after leaving the depot
        van = rng.uniform(1.5, 10, mode.shape) * HOUR
    else:
        van = np.full(mode.shape, 5.5 * HOUR)
    base = np.where(mode == LM, van, base)
    return np.where(mode >= 0, base, 0)


def _schedule(mode, created, dur, hold_h) -> tuple[np.ndarray, np.ndarray]:
    n = len(created)
    dep = np.full((n, 3), -1, dtype=np.int64)
    arr = np.full((n, 3), -1, dtype=np.int64)
    ready = created.astype(np.int64)
    for j in range(3):
        has = mode[:, j] >= 0
        d = _departure(mode[:, j], ready)
        a = d + dur[:, j].astype(np.int64)
        dep[:, j] = np.where(has, d, -1)
        arr[:, j] = np.where(has, a, -1)
        handling = HANDLING_H[np.maximum(mode[:, j], 0)] * HOUR
        ready = np.where(has, a + (handling + hold_h[:, j] * HOUR).astype(np.int64), ready)
    return dep, arr


def _delays(rng, world: World, mode, carrier, r: dict, a: Allocation, peak) -> np.ndarray:
    """Hours of disruption per leg: carrier reliability x lane x peak x daily carrier shocks."""
    n = len(mode)
    days = len(peak)
    day = np.minimum(a.ship_dispatch_day, days - 1)
    shock = rng.lognormal(0, 0.45, (days, len(CARRIER_IDS)))
    c = np.maximum(carrier, 0)
    cross = (
        geo.CITY_COUNTRY[np.maximum(r["city"][:, :3], 0)]
        != geo.CITY_COUNTRY[np.maximum(r["city"][:, 1:], 0)]
    )
    p = CARRIER_DELAY[c] * (1 + 0.3 * cross) * (1 + 0.6 * (peak[day][:, None] - 1))
    p = np.clip(p * shock[day[:, None], c], 0, 0.9)
    late = (rng.random((n, 3)) < p) & (mode >= 0)
    hours = rng.lognormal(np.log(DELAY_MEDIAN_H[np.maximum(mode, 0)]), 0.7)
    # a late van does not deliver at midnight: the parcel rides on a later day's round
    hours = np.where(mode == LM, 24.0 * (1 + (rng.random((n, 3)) < 0.2)), hours)
    return np.where(late, hours, 0.0)


def _outcomes(
    rng,
    world,
    o,
    a,
    r,
    mode,
    carrier,
    dist,
    created,
    plan_dep,
    plan_arr,
    dep,
    arr,
    delay_h,
    hold,
    customs,
) -> Shipments:
    n = len(created)
    n_legs = (mode >= 0).sum(axis=1)
    last = n_legs - 1
    rows = np.arange(n)
    fraud = o.f["fraud"][a.ship_order] > 0
    fails = np.where(rng.random(n) < 0.05, 1 + (rng.random(n) < 0.25), 0)
    address_issue = rng.random(n) < np.where(fraud, 0.05, 0.012)
    pickup = fails >= 2
    first_attempt = arr[rows, last].copy()
    extra = (
        fails * DAY
        + address_issue * rng.integers(1, 3, n) * DAY
        + pickup * rng.integers(1, 4, n) * DAY
    )
    arr[rows, last] = arr[rows, last] + extra
    damaged_leg = np.where(rng.random(n) < 0.012, (rng.random(n) * n_legs).astype(int), -1)
    p_lost = 0.003 + 0.01 * (mode[:, 1] == SEA)
    lost_leg = np.where(rng.random(n) < p_lost, (rng.random(n) * n_legs).astype(int), -1)
    lost = lost_leg >= 0
    lost_at = np.where(lost, dep[rows, np.maximum(lost_leg, 0)] + rng.integers(4, 8, n) * DAY, -1)
    delivered = np.where(lost, -1, arr[rows, last])
    promised = o.f["promised"][a.ship_order]
    addr = o.f["ship"][a.ship_order]
    tz = geo.country_tz_rule_index(r["acc"])
    off = utc_offset_min(tz, np.maximum(delivered, 0))
    del_day = local_day(delivered, off)
    late_days = np.where(lost, 99, np.maximum(0, del_day - promised))
    del addr
    weights = np.bincount(
        a.line_ship[a.line_ship >= 0],
        weights=(o.line_qty * world.sku_weight[o.line_sku])[a.line_ship >= 0],
        minlength=n,
    )
    leg_mask = mode >= 0
    cc = geo.CITY_COUNTRY[np.maximum(r["city"], 0)]
    cc[:, 1:] = np.where(r["kind"][:, 1:] == NODE_ADDR, r["acc"][:, None], cc[:, 1:])
    legs = Legs(
        ship=np.repeat(rows, n_legs),
        leg_no=np.nonzero(leg_mask)[1] + 1,
        mode=mode[leg_mask],
        carrier=carrier[leg_mask],
        o_city=r["city"][:, :3][leg_mask],
        d_city=r["city"][:, 1:][leg_mask],
        o_kind=r["kind"][:, :3][leg_mask],
        d_kind=r["kind"][:, 1:][leg_mask],
        o_lat=r["lat"][:, :3][leg_mask],
        o_lon=r["lon"][:, :3][leg_mask],
        d_lat=r["lat"][:, 1:][leg_mask],
        d_lon=r["lon"][:, 1:][leg_mask],
        o_cc=cc[:, :3][leg_mask],
        d_cc=cc[:, 1:][leg_mask],
        distance=np.round(dist[leg_mask], 1),
        plan_dep=plan_dep[leg_mask],
        plan_arr=plan_arr[leg_mask],
        dep=dep[leg_mask],
        arr=arr[leg_mask],
        delay_h=delay_h[leg_mask],
        hold_until=np.where(hold > 0, arr + (hold * HOUR).astype(np.int64), 0)[leg_mask],
        damaged=(np.arange(3)[None, :] == damaged_leg[:, None])[leg_mask],
        lost=(np.arange(3)[None, :] == lost_leg[:, None])[leg_mask],
        lost_at=np.repeat(lost_at, n_legs),
        fails=np.where(np.arange(3)[None, :] == last[:, None], fails[:, None], 0)[leg_mask],
        address_issue=((np.arange(3)[None, :] == last[:, None]) & address_issue[:, None])[leg_mask],
        pickup=((np.arange(3)[None, :] == last[:, None]) & pickup[:, None])[leg_mask],
        first_attempt=np.repeat(first_attempt, n_legs),
    )
    legs.extra["after_lost"] = (np.arange(3)[None, :] > lost_leg[:, None])[leg_mask] & np.repeat(
        lost, n_legs
    )
    return Shipments(
        order=a.ship_order,
        wh=a.ship_wh,
        created=created,
        service=r["service"],
        weight=np.round(weights, 3),
        promised=promised,
        delivered=delivered,
        late=late_days > 0,
        late_days=late_days,
        damaged=damaged_leg >= 0,
        lost=lost,
        wrong_item=~lost & (rng.random(n) < 0.006),
        customs=customs,
        legs=legs,
    )


def node_names() -> tuple[list[str], int]:
    """Display names: warehouses first, then hub/port/gateway/address names per city."""
    wh = [
        f"{w[1]} {'Central' if w[2] == 'central' else 'Forward'} Fulfilment Center"
        for w in WAREHOUSES
    ]
    cities = [c[0] for c in geo.CITIES]
    names = wh + [f"{c} parcel hub" for c in cities] + [f"Port of {c}" for c in cities]
    names += [f"{c} air gateway" for c in cities] + [f"Delivery address, {c}" for c in cities]
    return names, len(cities)


def node_index(kind: np.ndarray, city: np.ndarray, wh_of_city: dict[int, int]) -> np.ndarray:
    n_wh = len(WAREHOUSES)
    n_c = len(geo.CITIES)
    wh_idx = np.full(n_c, 0)
    for c, w in wh_of_city.items():
        wh_idx[c] = w
    base = np.select(
        [kind == NODE_HUB, kind == NODE_PORT, kind == NODE_AIR, kind == NODE_ADDR],
        [n_wh, n_wh + n_c, n_wh + 2 * n_c, n_wh + 3 * n_c],
        0,
    )
    return np.where(kind == NODE_WH, wh_idx[np.maximum(city, 0)], base + np.maximum(city, 0))
