"""Stock, allocation and outbound capacity, simulated day by day.

Each day's orders are allocated in time order to the nearest warehouse that stocks *and has*
everything; lines the primary cannot cover go to one fallback warehouse (a split shipment);
if nothing can cover them the order is cancelled as out of stock. End-of-day stock drives
reorder-point replenishment that arrives after a lead time. Outbound capacity per warehouse is
a FIFO queue: units beyond a day's capacity ship on a later day, which is what makes the peak
late. The loop is over days only; everything inside is vectorised over orders and SKUs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import geo
from .orders import Orders
from .world import World

PEAK_PREBUILD = 1.6  # planners stock up before 11.11, but not enough for the spike


@dataclass
class Allocation:
    ship_order: np.ndarray  # one row per shipment
    ship_wh: np.ndarray
    ship_units: np.ndarray
    ship_dispatch_day: np.ndarray  # day index; >= days means still in backlog at the end
    line_ship: np.ndarray  # shipment row per order line (-1 = not shipped)
    oos_order: np.ndarray  # bool per order: cancelled because out of stock
    snapshot: dict  # arrays for the inventory feed


def forecast(world: World, o: Orders, dist: np.ndarray, live: np.ndarray) -> np.ndarray:
    """Daily demand per (warehouse, SKU) as a planner would forecast it (with error)."""
    n_wh, n_sku = world.stocked.shape
    li_order = np.repeat(np.arange(o.n), o.f["n_lines"])
    d = np.where(world.stocked[:, o.line_sku].T, dist[li_order], np.inf)
    wh = np.argmin(d, axis=1)
    units = np.bincount(
        wh * n_sku + o.line_sku, weights=o.line_qty * live[li_order], minlength=n_wh * n_sku
    )
    days = max(1, int(o.f["day"].max()) + 1)
    return units.reshape(n_wh, n_sku) / days


def _order_ok(ok_lines: np.ndarray, starts: np.ndarray) -> np.ndarray:
    return np.logical_and.reduceat(ok_lines, starts, axis=0)


def allocate(
    rng: np.random.Generator,
    world: World,
    o: Orders,
    live: np.ndarray,
    dist: np.ndarray,
    days: int,
    peak: np.ndarray,
) -> Allocation:
    n_wh, n_sku = world.stocked.shape
    fc = forecast(world, o, dist, live) * rng.lognormal(0, 0.25, (n_wh, n_sku))
    fc = np.maximum(fc, 0.05) * world.stocked
    lead = np.where(world.wh_central, 6, 3)[:, None]
    avail = np.round(fc * rng.uniform(8, 20, fc.shape)).astype(np.int64) + world.stocked * 2
    arrivals = np.zeros((days + 16, n_wh, n_sku), dtype=np.int64)
    inbound = np.zeros_like(avail)
    line_wh = np.full(len(o.line_sku), -1)
    oos = np.zeros(o.n, dtype=bool)
    snaps: dict = {"on_hand": [], "inbound": [], "replenished": []}
    day_start = np.searchsorted(o.f["day"], np.arange(days + 1))
    for d in range(days):
        got = arrivals[d]
        avail += got
        inbound -= got
        a, b = day_start[d], day_start[d + 1]
        if b > a:
            _allocate_day(o, live, dist, world, avail, line_wh, oos, a, b)
        pre = np.any(peak[d + 1 : d + 8] > 1.5)
        target = fc * (lead + 12) * (PEAK_PREBUILD if pre else 1.0)
        rop = fc * (lead + 3) * (PEAK_PREBUILD if pre else 1.0)
        pos = avail + inbound
        need = world.stocked & (pos <= rop)
        qty = np.where(need, np.ceil(target - pos), 0).astype(np.int64)
        lt = lead + rng.integers(-1, 3, (n_wh, n_sku))
        for k in np.unique(lt):  # few distinct lead times: one scatter each
            arrivals[d + k] += np.where(lt == k, qty, 0)
        inbound += qty
        snaps["on_hand"].append(avail[world.stocked].copy())
        snaps["inbound"].append(inbound[world.stocked].copy())
        snaps["replenished"].append(got[world.stocked].copy())
    return _shipments(world, o, line_wh, oos, days, snaps)


def _allocate_day(o: Orders, live, dist, world: World, avail, line_wh, oos, a: int, b: int) -> None:
    n_wh, n_sku = avail.shape
    la, lb = o.line_off[a], o.line_off[b]
    orders = np.repeat(np.arange(a, b), o.f["n_lines"][a:b])
    starts = o.line_off[a:b] - la
    sku, qty = o.line_sku[la:lb], o.line_qty[la:lb]
    alive = live[orders]
    stocked = world.stocked[:, sku].T  # lines x warehouses
    # primary: nearest warehouse that stocks and has every line at the start of the day
    has = stocked & (qty[:, None] <= avail[:, sku].T)
    d_ord = dist[a:b]
    primary = np.argmin(np.where(_order_ok(has, starts), d_ord, np.inf), axis=1)
    none = ~_order_ok(has, starts).any(axis=1)
    primary[none] = np.argmin(np.where(_order_ok(stocked, starts), d_ord, np.inf), axis=1)[none]
    wh = primary[orders - a]
    fill = _compete(avail, wh, sku, qty, alive)
    # fallback: one other warehouse for everything the primary could not cover
    short = alive & ~fill
    left = avail.copy()
    np.subtract.at(left, (wh[fill], sku[fill]), qty[fill])
    has2 = stocked & (qty[:, None] <= left[:, sku].T) | ~short[:, None]
    # only central warehouses serve other regions' orders: forward stock stays local
    ok2 = _order_ok(has2, starts) & world.wh_central[None, :]
    ok2[np.arange(b - a), primary] = False
    fb = np.argmin(np.where(ok2, d_ord, np.inf), axis=1)
    wh2 = np.where(short, fb[orders - a], wh)
    fill2 = short & _compete(left, wh2, sku, qty, short) & ok2.any(axis=1)[orders - a]
    failed = np.zeros(b - a, dtype=bool)
    np.logical_or.at(failed, orders - a, short & ~fill2)
    oos[a:b] |= failed & live[a:b]
    final = alive & ~failed[orders - a]
    w_final = np.where(fill, wh, wh2)
    line_wh[la:lb] = np.where(final, w_final, -1)
    np.subtract.at(avail, (w_final[final], sku[final]), qty[final])


def _compete(
    avail: np.ndarray, wh: np.ndarray, sku: np.ndarray, qty: np.ndarray, active: np.ndarray
) -> np.ndarray:
    """Which lines get stock when several orders draw on the same (warehouse, SKU) today."""
    n_sku = avail.shape[1]
    key = np.where(active, wh * n_sku + sku, -1)
    order = np.argsort(key, kind="stable")  # stable keeps time order within a key
    k_sorted, q_sorted = key[order], np.where(active, qty, 0)[order]
    cum = np.cumsum(q_sorted)
    first = np.searchsorted(k_sorted, k_sorted, side="left")
    before = np.where(first > 0, cum[first - 1], 0)
    within = cum - before
    ok_sorted = within <= avail.ravel()[np.maximum(k_sorted, 0)]
    ok = np.empty_like(ok_sorted)
    ok[order] = ok_sorted
    return ok & active


def _shipments(world: World, o: Orders, line_wh, oos, days: int, snaps: dict) -> Allocation:
    n_wh = len(world.wh_city)
    li_order = np.repeat(np.arange(o.n), o.f["n_lines"])
    shipped = line_wh >= 0
    key = li_order * n_wh + np.maximum(line_wh, 0)
    uk, inv = np.unique(key[shipped], return_inverse=True)
    ship_order, ship_wh = uk // n_wh, uk % n_wh
    units = np.bincount(inv, weights=o.line_qty[shipped]).astype(np.int64)
    line_ship = np.full(len(line_wh), -1)
    line_ship[shipped] = inv
    dispatch = _capacity_queue(
        world, o.f["day"][ship_order], ship_wh, units, days, o.f["utc"][ship_order]
    )
    snaps["reserved"] = _reserved(world, o, li_order, line_wh, line_ship, dispatch, days)
    return Allocation(ship_order, ship_wh, units, dispatch, line_ship, oos, snaps)


def _reserved(world: World, o: Orders, li_order, line_wh, line_ship, dispatch, days: int) -> list:
    """Units allocated to orders but still waiting for outbound capacity, per day."""
    n_wh, n_sku = world.stocked.shape
    sel = line_wh >= 0
    a = o.f["day"][li_order[sel]]
    b = np.minimum(dispatch[line_ship[sel]], days)
    waiting = b > a
    cell = (line_wh[sel] * n_sku + o.line_sku[sel])[waiting]
    q = o.line_qty[sel][waiting]
    diff = np.zeros((days + 1, n_wh * n_sku), dtype=np.int64)
    np.add.at(diff, (a[waiting], cell), q)
    np.add.at(diff, (b[waiting], cell), -q)
    level = np.cumsum(diff, axis=0)[:days]
    flat = world.stocked.ravel()
    return [level[d][flat] for d in range(days)]


def _capacity_queue(world: World, day, wh, units, days: int, utc) -> np.ndarray:
    """FIFO per warehouse: the dispatch day of each shipment given daily unit capacity."""
    dispatch = np.empty(len(day), dtype=np.int64)
    for w in range(len(world.wh_city)):
        sel = np.flatnonzero(wh == w)
        if not sel.size:
            continue
        sel = sel[np.lexsort((utc[sel], day[sel]))]
        demand = np.bincount(day[sel], weights=units[sel], minlength=days)[:days]
        served = np.empty(days)
        backlog = 0.0
        cap = world.wh_capacity[w]
        for d in range(days):
            backlog += demand[d]
            out = min(backlog, cap)
            backlog -= out
            served[d] = out
        cum_served = np.cumsum(served)
        position = np.cumsum(units[sel])
        dispatch[sel] = np.maximum(day[sel], np.searchsorted(cum_served, position - 1e-9))
    return dispatch


def planning_capacity(world: World, o: Orders, dist: np.ndarray) -> np.ndarray:
    """Typical units per warehouse per day, what capacity is planned against."""
    li_order = np.repeat(np.arange(o.n), o.f["n_lines"])
    d = np.where(world.stocked[:, o.line_sku].T, dist[li_order], np.inf)
    wh = np.argmin(d, axis=1)
    per_day = np.zeros((len(world.wh_city), int(o.f["day"].max()) + 1))
    np.add.at(per_day, (wh, o.f["day"][li_order]), o.line_qty)
    return np.median(per_day, axis=1) * 1.15


def order_wh_distance(world: World, o: Orders) -> np.ndarray:
    book = world.addresses.freeze()
    lat, lon = book["lat"][o.f["ship"]], book["lon"][o.f["ship"]]
    return geo.haversine_km(
        lat[:, None],
        lon[:, None],
        geo.CITY_LAT[world.wh_city][None, :],
        geo.CITY_LON[world.wh_city][None, :],
    ).astype(np.float32)
