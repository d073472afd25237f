"""Orders: who buys what, when, how they pay, what was promised.

Legitimate orders are sampled here; fraudulent ones come from :mod:`fraud` with the same
columns and are merged before ids are assigned, so nothing but behaviour tells them apart.
Money is handled in integer cents so ``order_total`` equals lines + fee to the cent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from . import geo
from .demand import EVERGREEN_CODE, Calendar, local_times
from .textutil import (
    cat,
    dotted_ip,
    hex_str,
    list_array,
    map_values,
    num_str,
    pick,
    splitmix64,
    struct_array,
)
from .timeutil import DAY, date_array, iso_local, local_day, utc_offset_min
from .world import World, address_struct, customer_ids, random_ip

CHANNELS = ["web", "app", "marketplace", "call_center"]
PAYMENTS = ["card", "paypal", "bnpl", "bank_transfer", "gift_card", "cod"]
PROMISES = ["next_day", "standard", "green"]
FRAUD_PATTERNS = ["", "ring", "account_takeover", "velocity_burst", "new_account_high_value"]
COD_COUNTRIES = ["PL", "PT", "ES", "IT"]
LINES_P = [0.46, 0.27, 0.15, 0.08, 0.04]
SEA_DAYS = {"US": 24, "CA": 24, "BR": 30, "CN": 36, "SG": 36}

Frame = dict[str, np.ndarray]


def legit_frame(rng: np.random.Generator, world: World, cal: Calendar, n: int) -> Frame:
    """Ordinary customers' orders: habits, own devices and IPs, shipping mostly home."""
    days = len(cal.weights)
    counts = rng.multinomial(n, cal.weights / cal.weights.sum())
    day = np.repeat(np.arange(days), counts)
    n_c = len(world.cust_weight)
    cdf = np.cumsum(world.cust_weight)
    cust = np.minimum(np.searchsorted(cdf, rng.random(n) * cdf[-1]), n_c - 1)
    country = geo.CITY_COUNTRY[world.cust_city[cust]]
    utc = local_times(rng, day, geo.country_tz_rule_index(country), world.t0, world.t_end)
    k_dev = np.diff(world.cust_dev_off)[cust]
    dev_pick = np.where(rng.random(n) < 0.8, 0, (rng.random(n) * k_dev).astype(np.int64))
    device = world.cust_devices[world.cust_dev_off[cust] + dev_pick]
    k_ip = np.diff(world.cust_ip_off)[cust]
    ip = world.cust_ips[world.cust_ip_off[cust] + (rng.random(n) * k_ip).astype(np.int64)]
    # travel, mobile networks and work VPNs: legit IPs are not always at home
    roam = rng.random(n)
    away = roam < 0.10
    other_city = _random_city(rng, int(away.sum()), eu_only=roam[away] < 0.07)
    ip[away] = random_ip(rng, world, other_city)
    channel = rng.choice(4, n, p=[0.45, 0.38, 0.12, 0.05])
    pay = rng.choice(6, n, p=[0.50, 0.22, 0.12, 0.06, 0.04, 0.06])
    pay = np.where((pay == 5) & ~np.isin(country, COD_COUNTRIES), 0, pay)
    home = world.cust_home[cust]
    ship = home.copy()
    r = rng.random(n)
    gift = r < 0.08
    work = (r >= 0.08) & (r < 0.11)
    ship[gift] = world.addresses.add(rng, _gift_city(rng, world.cust_city[cust[gift]]))
    ship[work] = world.addresses.add(rng, world.cust_city[cust[work]], spread_deg=0.05)
    promo_day = cal.promo_idx[day]
    use = (promo_day >= 0) & (rng.random(n) < 0.35)
    promo = np.where(use, promo_day, -1)
    promo = np.where((promo < 0) & (rng.random(n) < 0.012), len(cal.codes), promo)
    return {
        "cust": cust,
        "utc": utc,
        "channel": channel,
        "pay": pay,
        "instrument": splitmix64(cust.astype(np.uint64) * np.uint64(8) + pay.astype(np.uint64)),
        "device": device,
        "ip": ip,
        "bill": home,
        "ship": ship,
        "promo": promo,
        "n_lines": rng.choice(5, n, p=LINES_P) + 1,
        "risk_pref": np.full(n, 0.0),
        "qty_boost": np.zeros(n),
        "next_day_pref": np.zeros(n),
        "fraud": np.zeros(n, np.int8),
        "group": np.full(n, -1),
    }


def _random_city(rng: np.random.Generator, n: int, eu_only: np.ndarray | bool = True) -> np.ndarray:
    eu = np.flatnonzero(geo.CITY_EU)
    anywhere = np.arange(len(geo.CITIES))
    pick_eu = eu[rng.integers(0, len(eu), n)]
    pick_any = anywhere[rng.integers(0, len(anywhere), n)]
    return np.where(eu_only, pick_eu, pick_any)


def _gift_city(rng: np.random.Generator, home_city: np.ndarray) -> np.ndarray:
    """Gifts go mostly to another city of the same country."""
    n = len(home_city)
    out = _random_city(rng, n)
    same = rng.random(n) < 0.8
    country = geo.CITY_COUNTRY[home_city]
    for code in np.unique(country[same]):
        sel = np.flatnonzero(same & (country == code))
        cand = np.flatnonzero(code == geo.CITY_COUNTRY)
        out[sel] = cand[rng.integers(0, len(cand), len(sel))]
    return out


@dataclass
class Orders:
    """Merged, time-sorted orders with nested lines as flat arrays."""

    f: Frame  # per-order columns (see legit_frame), plus derived ones
    line_off: np.ndarray  # order i has lines [line_off[i], line_off[i+1])
    line_sku: np.ndarray
    line_qty: np.ndarray
    line_price: np.ndarray  # cents
    line_disc: np.ndarray  # cents

    @property
    def n(self) -> int:
        return len(self.f["utc"])


def merge(frames: list[Frame]) -> Frame:
    keys = frames[0].keys()
    out = {k: np.concatenate([fr[k] for fr in frames]) for k in keys}
    order = np.lexsort((out["cust"], out["utc"]))  # deterministic tie-break
    return {k: v[order] for k, v in out.items()}


def _sample_skus(rng, world: World, day: np.ndarray, high_risk: np.ndarray) -> np.ndarray:
    """Popularity-weighted SKUs among those launched by that day (risky ones for fraud)."""
    out = np.empty(len(day), dtype=np.int64)
    risky = world.sku_risk == 2
    for d in np.unique(day):
        live = world.sku_launch_day <= d
        sel_d = day == d
        for flag in (False, True):
            sel = np.flatnonzero(sel_d & (high_risk == flag))
            if not sel.size:
                continue
            w = world.sku_popularity * live * (risky if flag else 1.0)
            cdf = np.cumsum(w)
            out[sel] = np.searchsorted(cdf, rng.random(len(sel)) * cdf[-1], side="right")
    return np.minimum(out, len(world.sku_popularity) - 1)


def finalize(rng: np.random.Generator, world: World, cal: Calendar, f: Frame) -> Orders:
    """Lines, promise, fee and totals for the merged frame."""
    n = len(f["utc"])
    f["day"] = ((f["utc"] - world.t0) // DAY).astype(np.int64)
    country = geo.CITY_COUNTRY[world.cust_city[f["cust"]]]
    f["tz"] = geo.country_tz_rule_index(country)
    f["off"] = utc_offset_min(f["tz"], f["utc"])
    line_off = np.concatenate([[0], np.cumsum(f["n_lines"])])
    li_order = np.repeat(np.arange(n), f["n_lines"])
    risky = rng.random(len(li_order)) < f["risk_pref"][li_order]
    sku = _sample_skus(rng, world, f["day"][li_order], risky)
    qty = rng.geometric(0.78, len(li_order)) + rng.poisson(f["qty_boost"][li_order])
    price = world.sku_price_cents[sku]
    pct = np.array([c[1] for c in cal.codes] + [EVERGREEN_CODE[1]])
    line_pct = np.where(f["promo"][li_order] >= 0, pct[f["promo"][li_order]], 0)
    disc = (qty * price * line_pct) // 100
    _promise(rng, world, f)
    sub = np.add.reduceat(qty * price - disc, line_off[:-1])
    f["fee"] = _fee(f, sub, world)
    f["total"] = sub + f["fee"]
    return Orders(f, line_off, sku, qty, price, disc)


def _promise(rng: np.random.Generator, world: World, f: Frame) -> None:
    """Delivery promise the shop makes at checkout, from the address and stock-free routing."""
    book = world.addresses.freeze()
    lat, lon = book["lat"][f["ship"]], book["lon"][f["ship"]]
    ship_cc = book["country"][f["ship"]]
    d = geo.haversine_km(
        lat[:, None],
        lon[:, None],
        geo.CITY_LAT[world.wh_city][None, :],
        geo.CITY_LON[world.wh_city][None, :],
    ).min(axis=1)
    eu = geo.CITY_EU[book["city"][f["ship"]]]
    n = len(d)
    cust = f["cust"]
    tier_boost = (world.cust_tier[cust] >= 2) * 0.12
    r = rng.random(n)
    p_next = np.where(eu & (d < 700), 0.16 + tier_boost + f["next_day_pref"], 0.0)
    p_green = world.cust_green[cust] + np.where(eu, 0.0, 0.15)
    promise = np.where(r < p_next, 0, np.where(r < p_next + p_green, 2, 1))
    local_sod = (f["utc"] + f["off"].astype(np.int64) * 60) % DAY
    days = np.where(promise == 0, 1 + (local_sod >= 18 * 3600), 0)
    std = 2 + (d >= 400) + (d >= 1200)
    days = np.where(promise == 1, std, days)
    days = np.where(promise == 2, std + 2, days)
    sea_days = map_values(ship_cc, {c: SEA_DAYS.get(c, 30) for c in geo.COUNTRY_CODES})
    days = np.where(~eu & (promise == 1), 6, days)
    days = np.where(~eu & (promise == 2), sea_days, days)
    pdate = local_day(f["utc"], f["off"]) + days
    pdate = pdate + ((pdate + 3) % 7 == 6)  # epoch day 0 was a Thursday; no Sunday deliveries
    f["promise"], f["promised"], f["ship_eu"] = promise, pdate, eu


def _fee(f: Frame, sub: np.ndarray, world: World) -> np.ndarray:
    gold = world.cust_tier[f["cust"]] >= 2
    fee = np.select(
        [f["promise"] == 0, f["promise"] == 1, f["promise"] == 2],
        [
            np.full(len(sub), 699),
            np.where((sub >= 5000) | gold, 0, 399),
            np.where(sub >= 4000, 0, 299),
        ],
    )
    return fee + np.where(f["ship_eu"], 0, np.where(f["promise"] == 2, 999, 1499))


def order_ids(n: int) -> pa.Array:
    return cat("ORD-", num_str(np.arange(1, n + 1), 8))


def orders_table(world: World, o: Orders, cal: Calendar) -> pa.Table:
    """The OMS export, one row per order with nested addresses and lines."""
    f = o.f
    book = world.addresses.freeze()
    codes = [c[0] for c in cal.codes] + [EVERGREEN_CODE[0]]
    promo = pick(codes, np.maximum(f["promo"], 0))
    promo = pa.array(
        np.where(f["promo"] >= 0, promo.to_numpy(zero_copy_only=False), None), type=pa.string()
    )
    ua_idx = _user_agent_index(f)
    from .vocab import USER_AGENTS

    agents = [ua for ch in CHANNELS for ua in USER_AGENTS[ch]]
    n_lines = len(o.line_sku)
    lines = struct_array(
        [
            pa.array(np.arange(n_lines) - np.repeat(o.line_off[:-1], f["n_lines"]) + 1),
            cat("SKU-", num_str(o.line_sku + 1, 6)),
            pa.array(o.line_qty),
            pa.array(o.line_price / 100),
            pa.array(o.line_disc / 100),
        ],
        ["line_no", "sku_id", "quantity", "unit_price", "discount"],
    )
    return pa.table(
        {
            "order_id": order_ids(o.n),
            "customer_id": customer_ids(f["cust"]),
            "order_ts": iso_local(f["utc"], f["off"]),
            "channel": pick(CHANNELS, f["channel"]),
            "payment_method": pick(PAYMENTS, f["pay"]),
            "payment_instrument_id": hex_str(f["instrument"], "pi_"),
            "device_id": hex_str(f["device"], "dev_"),
            "ip_address": dotted_ip(f["ip"]),
            "user_agent": pick(agents, ua_idx),
            "currency": pa.array(np.full(o.n, "EUR")),
            "promise_type": pick(PROMISES, f["promise"]),
            "promised_delivery_date": date_array(f["promised"]),
            "promo_code": promo,
            "billing_address": address_struct(book, f["bill"]),
            "shipping_address": address_struct(book, f["ship"]),
            "order_total": f["total"] / 100,
            "shipping_fee": f["fee"] / 100,
            "lines": list_array(pa.array(o.line_off.astype(np.int32)), lines),
        }
    )


def _user_agent_index(f: Frame) -> np.ndarray:
    from .vocab import USER_AGENTS

    sizes = np.array([len(USER_AGENTS[c]) for c in CHANNELS])
    base = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    ch = f["channel"]
    # a device keeps its browser/app: derive the variant from the device id
    return base[ch] + (f["device"] % sizes[ch].astype(np.uint64)).astype(np.int64)
