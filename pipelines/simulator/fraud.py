"""Fraud: four attack patterns with the fingerprints a risk model can learn from.

* ``ring``: organised groups re-using a handful of devices, IPs and stolen cards across many
  fresh accounts, shipping to a few drop addresses; each ring is active for a limited window,
  which makes the fraud rate vary over time.
* ``account_takeover``: an established, well-behaved account suddenly orders from a new
  device and an IP far from home to a new shipping address, paying with the stored card.
* ``velocity_burst``: one account fires many orders within minutes with different cards
  (card testing), same device and IP.
* ``new_account_high_value``: an account opened hours before a large order of resellable goods.

All patterns lean towards high-risk SKUs (electronics, gift cards, luxury), bigger baskets and
express delivery, and many have billing != shipping or an IP country != shipping country.
"""

from __future__ import annotations

import numpy as np

from . import geo
from .demand import Calendar, local_times
from .orders import Frame
from .textutil import splitmix64
from .timeutil import DAY, HOUR, MINUTE
from .world import World, add_customers, random_ip

PATTERN_SHARE = {1: 0.35, 2: 0.22, 3: 0.23, 4: 0.20}
FLAT_HOURS = np.ones(24) + np.array([2.0] * 6 + [0.0] * 18)  # fraudsters also work at night


def fraud_rate_by_day(rng: np.random.Generator, cal: Calendar, base: float) -> np.ndarray:
    """A slowly drifting rate (campaigns come and go), higher around the peak."""
    walk = np.exp(np.cumsum(rng.normal(0, 0.08, len(cal.weights))))
    walk /= walk.mean()
    return base * walk * np.where(cal.peak_factor > 1, 1.5, 1.0)


def plan_counts(rng: np.random.Generator, cal: Calendar, n_orders: int, base_rate: float) -> dict:
    rate = fraud_rate_by_day(rng, cal, base_rate)
    expected = cal.weights / cal.weights.sum() * n_orders * rate
    total = int(round(expected.sum()))
    per_pattern = rng.multinomial(total, list(PATTERN_SHARE.values()))
    return {
        "day_weight": expected / expected.sum(),
        "counts": dict(zip(PATTERN_SHARE, per_pattern, strict=True)),
    }


def _new_devices(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(1, 2**63, n, dtype=np.int64).astype(np.uint64)


def _base(n: int, pattern: int) -> Frame:
    return {
        "cust": np.zeros(n, np.int64),
        "utc": np.zeros(n, np.int64),
        "channel": np.zeros(n, np.int64),
        "pay": np.zeros(n, np.int64),
        "instrument": np.zeros(n, np.uint64),
        "device": np.zeros(n, np.uint64),
        "ip": np.zeros(n, np.int64),
        "bill": np.zeros(n, np.int64),
        "ship": np.zeros(n, np.int64),
        "promo": np.full(n, -1),
        "n_lines": np.ones(n, np.int64),
        "risk_pref": np.full(n, 0.7),
        "qty_boost": np.full(n, 0.6),
        "next_day_pref": np.full(n, 0.35),
        "fraud": np.full(n, pattern, np.int8),
        "group": np.full(n, -1),
    }


def _accounts(rng, world: World, n: int, signup: np.ndarray, devices, ips) -> np.ndarray:
    city = np.flatnonzero(geo.CITY_EU)[rng.integers(0, int(geo.CITY_EU.sum()), n)]
    return add_customers(world, rng, city, signup, devices, ips)


def rings(rng: np.random.Generator, world: World, cal: Calendar, n: int) -> Frame:
    f = _base(n, 1)
    if n == 0:
        return f
    n_rings = max(1, n // 60)
    sizes = rng.multinomial(n - n_rings, np.ones(n_rings) / n_rings) + 1
    pos = 0
    days = len(cal.weights)
    eu = np.flatnonzero(geo.CITY_EU)
    for g, k in enumerate(sizes):
        sl = slice(pos, pos + k)
        pos += k
        first = int(rng.integers(0, days))
        span = int(min(days - first, rng.integers(3, 21)))
        devs = _new_devices(rng, int(rng.integers(2, 5)))
        ip_city = eu[rng.integers(0, len(eu))]
        ips = random_ip(rng, world, np.full(int(rng.integers(2, 6)), ip_city))
        n_acc = max(2, k // 3)
        signup = world.t0 + first * DAY - rng.integers(0, 20 * DAY, n_acc)
        acc = _accounts(
            rng,
            world,
            n_acc,
            signup,
            [devs[rng.integers(0, len(devs), 1)] for _ in range(n_acc)],
            [ips[rng.integers(0, len(ips), 1)] for _ in range(n_acc)],
        )
        drops = world.addresses.add(
            rng, np.full(int(rng.integers(2, 4)), eu[rng.integers(0, len(eu))])
        )
        cards = rng.integers(1, 2**63, max(2, k // 2), dtype=np.int64).astype(np.uint64)
        f["cust"][sl] = acc[rng.integers(0, n_acc, k)]
        day = first + rng.integers(0, span, k)
        f["utc"][sl] = local_times(
            rng, day, np.zeros(k, np.int8), world.t0, world.t_end, FLAT_HOURS
        )
        f["device"][sl] = devs[rng.integers(0, len(devs), k)]
        f["ip"][sl] = ips[rng.integers(0, len(ips), k)]
        f["instrument"][sl] = cards[rng.integers(0, len(cards), k)]
        f["ship"][sl] = drops[rng.integers(0, len(drops), k)]
        f["group"][sl] = g
    f["bill"] = world.cust_home[f["cust"]]
    f["pay"] = np.where(rng.random(n) < 0.8, 0, 4)
    f["channel"] = rng.choice(2, n)
    f["n_lines"] = rng.choice(3, n) + 1
    return f


def takeovers(rng: np.random.Generator, world: World, plan: dict, n: int, n_legit: int) -> Frame:
    f = _base(n, 2)
    if n == 0:
        return f
    old = np.flatnonzero(world.cust_signup[:n_legit] < world.t0 - 365 * DAY)
    n_vict = max(1, n // 2)
    victims = (
        old[rng.integers(0, len(old), n_vict)] if len(old) else rng.integers(0, n_legit, n_vict)
    )
    per = rng.multinomial(n - n_vict, np.ones(n_vict) / n_vict) + 1
    cust = np.repeat(victims, per)
    first = np.repeat(np.searchsorted(np.cumsum(plan["day_weight"]), rng.random(n_vict)), per)
    start = world.t0 + first * DAY + rng.integers(0, DAY, n)
    start = np.repeat(start[np.cumsum(per) - per], per)  # a session starts at the first order
    f["utc"] = np.minimum(start + rng.integers(0, 6 * HOUR, n), world.t_end - 1)
    f["cust"] = cust
    f["device"] = np.repeat(_new_devices(rng, n_vict), per)
    far = _far_city(rng, world.cust_city[victims])
    f["ip"] = random_ip(rng, world, np.repeat(far, per))
    new_addr = world.addresses.add(rng, _far_city(rng, world.cust_city[victims], eu_only=True))
    f["ship"] = np.repeat(new_addr, per)
    f["bill"] = world.cust_home[cust]
    f["pay"] = np.zeros(n, np.int64)
    # the stored card of the victim: same fingerprint as their legitimate orders
    f["instrument"] = splitmix64(cust.astype(np.uint64) * np.uint64(8))
    f["channel"] = rng.choice(2, n, p=[0.6, 0.4])
    f["n_lines"] = rng.choice(3, n) + 1
    f["group"] = np.repeat(victims, per)
    f["next_day_pref"] = np.full(n, 0.5)
    return f


def _far_city(rng: np.random.Generator, home: np.ndarray, eu_only: bool = False) -> np.ndarray:
    """A city in another country than ``home`` (anywhere, or in the EU)."""
    pool = np.flatnonzero(geo.CITY_EU) if eu_only else np.arange(len(geo.CITIES))
    out = pool[rng.integers(0, len(pool), len(home))]
    for _ in range(4):  # re-draw the few that landed in the home country
        same = geo.CITY_COUNTRY[out] == geo.CITY_COUNTRY[home]
        out[same] = pool[rng.integers(0, len(pool), int(same.sum()))]
    return out


def bursts(rng: np.random.Generator, world: World, plan: dict, n: int) -> Frame:
    f = _base(n, 3)
    if n == 0:
        return f
    n_b = max(1, n // 7)
    per = rng.multinomial(n - n_b, np.ones(n_b) / n_b) + 1
    first = np.searchsorted(np.cumsum(plan["day_weight"]), rng.random(n_b))
    t_start = world.t0 + first * DAY + rng.integers(0, DAY, n_b)
    signup = t_start - rng.integers(10 * MINUTE, 30 * DAY, n_b)
    devs = _new_devices(rng, n_b)
    ip_city = _far_city(rng, np.full(n_b, 0))
    ips = random_ip(rng, world, ip_city)
    acc = _accounts(
        rng,
        world,
        n_b,
        signup,
        [devs[i : i + 1] for i in range(n_b)],
        [ips[i : i + 1] for i in range(n_b)],
    )
    b = np.repeat(np.arange(n_b), per)
    within = rng.exponential(1, n) * rng.uniform(3, 20, n) * MINUTE
    f["utc"] = np.minimum(t_start[b] + within.astype(np.int64), world.t_end - 1)
    f["cust"], f["device"], f["ip"] = acc[b], devs[b], ips[b]
    f["bill"] = world.cust_home[acc[b]]
    drop = world.addresses.add(rng, _far_city(rng, world.cust_city[acc], eu_only=True))
    f["ship"] = drop[b]
    f["instrument"] = rng.integers(1, 2**63, n, dtype=np.int64).astype(np.uint64)  # card testing
    f["pay"] = np.zeros(n, np.int64)
    f["channel"] = rng.choice(2, n, p=[0.7, 0.3])
    f["n_lines"] = rng.choice(2, n) + 1
    f["group"] = b
    return f


def new_accounts(rng: np.random.Generator, world: World, plan: dict, n: int) -> Frame:
    f = _base(n, 4)
    if n == 0:
        return f
    day = np.searchsorted(np.cumsum(plan["day_weight"]), rng.random(n))
    f["utc"] = world.t0 + day * DAY + rng.integers(0, DAY, n)
    signup = f["utc"] - rng.integers(5 * MINUTE, 48 * HOUR, n)
    devs = _new_devices(rng, n)
    foreign = rng.random(n) < 0.5
    home = np.flatnonzero(geo.CITY_EU)[rng.integers(0, int(geo.CITY_EU.sum()), n)]
    ip_city = np.where(foreign, _far_city(rng, home), home)
    ips = random_ip(rng, world, ip_city)
    acc = add_customers(
        world,
        rng,
        home,
        signup,
        [devs[i : i + 1] for i in range(n)],
        [ips[i : i + 1] for i in range(n)],
    )
    f["cust"], f["device"], f["ip"] = acc, devs, ips
    f["bill"] = world.cust_home[acc]
    other = rng.random(n) < 0.6
    f["ship"] = f["bill"].copy()
    f["ship"][other] = world.addresses.add(rng, _far_city(rng, home[other], eu_only=True))
    f["instrument"] = rng.integers(1, 2**63, n, dtype=np.int64).astype(np.uint64)
    f["pay"] = np.where(rng.random(n) < 0.75, 0, np.where(rng.random(n) < 0.5, 2, 4))
    f["channel"] = rng.choice(2, n)
    f["n_lines"] = rng.choice(4, n) + 2
    f["risk_pref"] = np.full(n, 0.85)
    f["qty_boost"] = np.full(n, 1.2)
    return f


def fraud_frames(
    rng: np.random.Generator,
    world: World,
    cal: Calendar,
    n_orders: int,
    base_rate: float,
    n_legit_customers: int,
) -> list[Frame]:
    """All fraudulent orders; adds the fraudsters' accounts to ``world``."""
    plan = plan_counts(rng, cal, n_orders, base_rate)
    c = plan["counts"]
    return [
        rings(rng, world, cal, c[1]),
        takeovers(rng, world, plan, c[2], n_legit_customers),
        bursts(rng, world, plan, c[3]),
        new_accounts(rng, world, plan, c[4]),
    ]
