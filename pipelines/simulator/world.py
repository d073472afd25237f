"""The static world: warehouses, carriers, SKUs, IP ranges, customers and their addresses.

Built first because everything else (demand, fraud, routing, events) samples from it. Sizes
scale with the requested number of orders so tiny test worlds stay fast while the full-size
world keeps a few thousand SKUs and about one customer per four orders.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import geo, vocab
from .textutil import (
    cat,
    dotted_ip,
    hex_str,
    list_array,
    map_values,
    num_str,
    pattern_str,
    pick,
    struct_array,
)
from .timeutil import DAY, epoch_s, iso_local, utc_offset_min

# id, city, type, opened year
WAREHOUSES = [
    ("WH-ERF", "Erfurt", "central", 2014),
    ("WH-VEN", "Venlo", "central", 2012),
    ("WH-ZAR", "Zaragoza", "central", 2017),
    ("WH-PAR", "Paris", "forward", 2019),
    ("WH-LYO", "Lyon", "forward", 2021),
    ("WH-MIL", "Milan", "forward", 2020),
    ("WH-ROM", "Rome", "forward", 2022),
    ("WH-WAW", "Warsaw", "forward", 2020),
    ("WH-LIS", "Lisbon", "forward", 2023),
    ("WH-VIE", "Vienna", "forward", 2021),
    ("WH-DUB", "Dublin", "forward", 2022),
    ("WH-HAM", "Hamburg", "forward", 2018),
]

# id, name, type, feed format, modes, country, delay propensity (share of late legs)
CARRIERS = [
    ("swiftparcel", "SwiftParcel", "parcel", "parcel_webhook_json", "last_mile", "NL", 0.06),
    ("colisrapide", "Colis Rapide", "parcel", "parcel_webhook_json", "last_mile", "FR", 0.10),
    ("skybridge", "SkyBridge Express", "air", "parcel_webhook_json", "air|last_mile", "DE", 0.05),
    ("bluemeridian", "Blue Meridian Lines", "ocean", "dcsa_tnt_json", "sea", "CH", 0.18),
    ("transalprail", "TransAlp Rail Cargo", "rail", "rail_csv", "rail", "AT", 0.14),
    ("eurohaul", "EuroHaul Linehaul", "linehaul", "rail_csv", "road", "DE", 0.07),
    ("iberiaroad", "Iberia Road Freight", "linehaul", "rail_csv", "road", "ES", 0.11),
]
CARRIER_IDS = [c[0] for c in CARRIERS]
CARRIER_DELAY = np.array([c[6] for c in CARRIERS])


@dataclass
class Addresses:
    """Address book shared by customers' homes, gift recipients and fraud drop points."""

    street: list[pa.Array] = field(default_factory=list)
    postal: list[pa.Array] = field(default_factory=list)
    city: list[np.ndarray] = field(default_factory=list)  # city index
    lat: list[np.ndarray] = field(default_factory=list)
    lon: list[np.ndarray] = field(default_factory=list)
    size: int = 0

    def add(
        self, rng: np.random.Generator, city: np.ndarray, spread_deg: float = 0.12
    ) -> np.ndarray:
        """Create one new address per entry of ``city``; returns their indices."""
        n = len(city)
        if n == 0:  # a small world: no gift or work address among its few orders
            return np.arange(self.size, self.size, dtype=np.int64)
        country = geo.CITY_COUNTRY[city]
        lang_of = map_values(country, {c: geo.COUNTRIES[c].languages[0] for c in geo.COUNTRIES})
        li = map_values(lang_of, {la: i for i, la in enumerate(vocab.LANGUAGES)})
        streets = [s for la in vocab.LANGUAGES for s in vocab.STREETS[la]]
        offsets = np.cumsum([0] + [len(vocab.STREETS[la]) for la in vocab.LANGUAGES])
        k = offsets[li] + (rng.random(n) * (offsets[li + 1] - offsets[li])).astype(int)
        self.street.append(cat(pick(streets, k), " ", num_str(rng.integers(1, 180, n))))
        postal = np.empty(n, dtype=object)
        for code in np.unique(country):
            sel = country == code
            postal[sel] = pattern_str(rng, geo.COUNTRIES[code].postal, int(sel.sum())).to_numpy(
                zero_copy_only=False
            )
        self.postal.append(pa.array(postal, type=pa.string()))
        self.city.append(np.asarray(city))
        self.lat.append(geo.CITY_LAT[city] + rng.normal(0, spread_deg, n))
        self.lon.append(geo.CITY_LON[city] + rng.normal(0, spread_deg * 1.4, n))
        idx = np.arange(self.size, self.size + n)
        self.size += n
        return idx

    def freeze(self) -> dict[str, object]:
        city = np.concatenate(self.city)
        return {
            "street": pa.concat_arrays(self.street),
            "postal": pa.concat_arrays(self.postal),
            "city": city,
            "country": geo.CITY_COUNTRY[city],
            "lat": np.round(np.concatenate(self.lat), 5),
            "lon": np.round(np.concatenate(self.lon), 5),
        }


def address_struct(book: dict[str, object], idx: np.ndarray) -> pa.StructArray:
    """The spec's address object for address-book rows ``idx``."""
    ia = pa.array(np.asarray(idx, dtype=np.int64))
    return struct_array(
        [
            book["street"].take(ia),
            pa.array(geo.CITY_NAMES[book["city"][idx]]),
            book["postal"].take(ia),
            pa.array(book["country"][idx]),
            pa.array(book["lat"][idx]),
            pa.array(book["lon"][idx]),
        ],
        ["street", "city", "postal_code", "country_code", "latitude", "longitude"],
    )


@dataclass
class World:
    start: dt.date
    days: int
    wh_city: np.ndarray
    wh_central: np.ndarray
    wh_capacity: np.ndarray
    sku_category: np.ndarray
    sku_price_cents: np.ndarray
    sku_weight: np.ndarray
    sku_risk: np.ndarray  # 0 low 1 medium 2 high
    sku_popularity: np.ndarray
    sku_launch_day: np.ndarray  # day index relative to start (negative = before)
    stocked: np.ndarray  # bool [warehouse, sku]
    ip_city: np.ndarray
    ip_from: np.ndarray
    ip_size: np.ndarray
    ip_first: np.ndarray  # first range per city
    ip_count: np.ndarray
    cust_home: np.ndarray  # address index
    cust_city: np.ndarray
    cust_lang: np.ndarray
    cust_tier: np.ndarray
    cust_weight: np.ndarray
    cust_green: np.ndarray
    cust_signup: np.ndarray  # UTC seconds
    cust_devices: list  # list of np arrays (device numbers), ragged via offsets
    cust_dev_off: np.ndarray
    cust_ips: np.ndarray
    cust_ip_off: np.ndarray
    cust_first: pa.Array
    cust_last: pa.Array
    cust_optin: np.ndarray
    addresses: Addresses
    tables: dict[str, pa.Table] = field(default_factory=dict)

    @property
    def n_customers(self) -> int:
        return len(self.cust_home)

    @property
    def t0(self) -> int:
        return epoch_s(self.start)

    @property
    def t_end(self) -> int:
        return self.t0 + self.days * DAY


def random_ip(rng: np.random.Generator, world: World, city: np.ndarray) -> np.ndarray:
    """A random address inside one of the city's IP ranges."""
    r = world.ip_first[city] + (rng.random(len(city)) * world.ip_count[city]).astype(np.int64)
    return world.ip_from[r] + (rng.random(len(city)) * world.ip_size[r]).astype(np.int64)


def _ip_ranges(rng: np.random.Generator) -> dict[str, np.ndarray]:
    n_city = len(geo.CITIES)
    count = 2 + np.minimum(6, (geo.CITY_POP // 2).astype(int))
    first = np.concatenate([[0], np.cumsum(count)[:-1]])
    city = np.repeat(np.arange(n_city), count)
    order = rng.permutation(len(city))  # blocks of different cities interleave, like real ones
    size = 2 ** rng.integers(12, 17, len(city))
    gaps = 2 ** rng.integers(8, 14, len(city))
    start = 0x02000000 + np.cumsum(size[order] + gaps[order]) - size[order]
    ip_from = np.empty(len(city), dtype=np.int64)
    ip_from[order] = start
    return {"city": city, "from": ip_from, "size": size, "first": first, "count": count}


def _skus(rng: np.random.Generator, n_sku: int, start_day: int, days: int) -> dict[str, np.ndarray]:
    shares = np.array([c[1] for c in vocab.CATEGORIES])
    cat_idx = rng.choice(len(shares), n_sku, p=shares / shares.sum())
    med = np.array([c[2] for c in vocab.CATEGORIES])[cat_idx]
    sig = np.array([c[3] for c in vocab.CATEGORIES])[cat_idx]
    price = np.maximum(1.99, rng.lognormal(np.log(med), sig))
    price_cents = (np.round(price) * 100 - 1).astype(np.int64)  # x.99 price points
    weight = np.round(rng.lognormal(np.log([c[4] for c in vocab.CATEGORIES])[cat_idx], 0.5), 3)
    risk = np.array([{"low": 0, "medium": 1, "high": 2}[c[5]] for c in vocab.CATEGORIES])[cat_idx]
    popularity = 1.0 / np.arange(1, n_sku + 1) ** 0.95
    popularity = popularity[rng.permutation(n_sku)]
    launch = -rng.integers(30, 3 * 365, n_sku)
    new = rng.random(n_sku) < 0.03
    launch[new] = rng.integers(1, max(2, days), int(new.sum()))
    return {
        "cat": cat_idx,
        "price": price_cents,
        "weight": weight,
        "risk": risk,
        "pop": popularity,
        "launch": launch,
        "vol": np.round(weight * rng.lognormal(1.2, 0.4, n_sku), 2),
    }


def _sku_table(rng: np.random.Generator, s: dict, start: dt.date) -> pa.Table:
    n = len(s["cat"])
    cats = [c[0] for c in vocab.CATEGORIES]
    nouns = [vocab.SKU_NOUNS[c] for c in cats]
    noun = [
        nouns[c][k % len(nouns[c])] for c, k in zip(s["cat"], rng.integers(0, 99, n), strict=True)
    ]
    adj = pick(vocab.SKU_ADJECTIVES, rng.integers(0, len(vocab.SKU_ADJECTIVES), n))
    name = cat(adj, " ", pa.array(noun), " ", num_str(rng.integers(100, 999, n)))
    launched = np.array(start, dtype="datetime64[D]") + s["launch"]
    return pa.table(
        {
            "sku_id": cat("SKU-", num_str(np.arange(1, n + 1), 6)),
            "name": name,
            "category": pick(cats, s["cat"]),
            "weight_kg": s["weight"],
            "volume_l": s["vol"],
            "unit_price": s["price"] / 100,
            "currency": pa.array(np.full(n, "EUR")),
            "risk_class": pick(["low", "medium", "high"], s["risk"]),
            "launched_on": pa.array(launched),
        }
    )


def _stocking(rng: np.random.Generator, central: np.ndarray, pop: np.ndarray) -> np.ndarray:
    n_sku = len(pop)
    k = min(1200, max(50, n_sku // 2))
    stocked = np.ones((len(central), n_sku), dtype=bool)
    for w in np.flatnonzero(~central):
        score = np.log(pop) + rng.gumbel(0, 0.6, n_sku)  # regional assortments differ a bit
        keep = np.zeros(n_sku, dtype=bool)
        keep[np.argsort(-score, kind="stable")[:k]] = True
        stocked[w] = keep
    return stocked


def _home_cities(rng: np.random.Generator, n: int) -> np.ndarray:
    w = geo.CITY_POP * np.where(geo.CITY_EU, 1.0, 0.035)
    return rng.choice(len(w), n, p=w / w.sum())


def _ragged_ids(rng: np.random.Generator, n: int, max_k: int, p: list[float]) -> tuple:
    k = rng.choice(np.arange(1, max_k + 1), n, p=p)
    off = np.concatenate([[0], np.cumsum(k)])
    return k, off


def build_world(rng: np.random.Generator, orders: int, days: int, start: dt.date) -> World:
    """Sample the static world for a run of ``orders`` orders over ``days`` days."""
    t0 = epoch_s(start)
    ipr = _ip_ranges(rng)
    n_sku = int(np.clip(orders // 100, 400, 2500))
    s = _skus(rng, n_sku, t0 // DAY, days)
    wh_city = np.array([geo.CITY_INDEX[w[1]] for w in WAREHOUSES])
    central = np.array([w[2] == "central" for w in WAREHOUSES])
    stocked = _stocking(rng, central, s["pop"])

    n_c = max(50, orders // 4)
    book = Addresses()
    city = _home_cities(rng, n_c)
    home = book.add(rng, city)
    country = geo.CITY_COUNTRY[city]
    # language per customer: the country's first language, bilingual countries mixed
    lang_c = np.empty(n_c, dtype=object)
    for code in np.unique(country):
        sel = np.flatnonzero(country == code)
        opts = geo.COUNTRIES[code].languages
        lang_c[sel] = np.array(opts)[rng.integers(0, len(opts), len(sel))]
    tier = rng.choice(4, n_c, p=[0.70, 0.18, 0.09, 0.03])
    weight = rng.lognormal(0, 1.25, n_c)  # heavy tail: a few customers order a lot
    green_country = np.isin(country, ["NL", "DE", "AT", "BE"]) * 0.12
    green = np.clip(rng.beta(1.2, 9, n_c) + green_country + (tier >= 2) * 0.05, 0, 0.9)
    age_days = np.minimum(rng.exponential(700, n_c) + 3, 3650)
    signup = t0 - (age_days * DAY).astype(np.int64) + rng.integers(0, DAY, n_c)
    k_dev, dev_off = _ragged_ids(rng, n_c, 3, [0.55, 0.35, 0.10])
    devices = rng.integers(1, 2**63, dev_off[-1], dtype=np.int64).astype(np.uint64)
    k_ip, ip_off = _ragged_ids(rng, n_c, 3, [0.5, 0.35, 0.15])
    world = World(
        start=start,
        days=days,
        wh_city=wh_city,
        wh_central=central,
        wh_capacity=np.zeros(len(WAREHOUSES), dtype=np.int64),
        sku_category=s["cat"],
        sku_price_cents=s["price"],
        sku_weight=s["weight"],
        sku_risk=s["risk"],
        sku_popularity=s["pop"],
        sku_launch_day=s["launch"],
        stocked=stocked,
        ip_city=ipr["city"],
        ip_from=ipr["from"],
        ip_size=ipr["size"],
        ip_first=ipr["first"],
        ip_count=ipr["count"],
        cust_home=home,
        cust_city=city,
        cust_lang=lang_c.astype(str),
        cust_tier=tier,
        cust_weight=weight,
        cust_green=green,
        cust_signup=signup,
        cust_devices=devices,
        cust_dev_off=dev_off,
        cust_ips=np.zeros(0, dtype=np.int64),
        cust_ip_off=ip_off,
        cust_first=pa.array([], pa.string()),
        cust_last=pa.array([], pa.string()),
        cust_optin=rng.random(n_c) < 0.45,
        addresses=book,
    )
    world.cust_ips = random_ip(rng, world, np.repeat(city, k_ip))
    world.tables["skus"] = _sku_table(rng, s, start)
    world.tables["ip_ranges"] = pa.table(
        {
            "ip_from": ipr["from"],
            "ip_to": ipr["from"] + ipr["size"] - 1,
            "country_code": pa.array(geo.CITY_COUNTRY[ipr["city"]]),
            "city": pa.array(geo.CITY_NAMES[ipr["city"]]),
            "latitude": geo.CITY_LAT[ipr["city"]],
            "longitude": geo.CITY_LON[ipr["city"]],
        }
    ).sort_by("ip_from")
    world.tables["carriers"] = pa.table(
        {
            "carrier_id": [c[0] for c in CARRIERS],
            "name": [c[1] for c in CARRIERS],
            "carrier_type": [c[2] for c in CARRIERS],
            "feed_format": [c[3] for c in CARRIERS],
            "modes": [c[4] for c in CARRIERS],
            "country_code": [c[5] for c in CARRIERS],
        }
    )
    return world


def add_customers(
    world: World,
    rng: np.random.Generator,
    city: np.ndarray,
    signup: np.ndarray,
    devices: list[np.ndarray],
    ips: list[np.ndarray],
    tier: int = 0,
) -> np.ndarray:
    """Append accounts (used for fraudsters' fresh accounts); returns their customer indices."""
    n = len(city)
    home = world.addresses.add(rng, city)
    first = world.n_customers
    world.cust_home = np.concatenate([world.cust_home, home])
    world.cust_city = np.concatenate([world.cust_city, city])
    langs = np.array([geo.COUNTRIES[c].languages[0] for c in geo.CITY_COUNTRY[city]], dtype=str)
    world.cust_lang = np.concatenate([world.cust_lang, langs])
    world.cust_tier = np.concatenate([world.cust_tier, np.full(n, tier)])
    world.cust_weight = np.concatenate([world.cust_weight, np.zeros(n)])
    world.cust_green = np.concatenate([world.cust_green, np.zeros(n)])
    world.cust_signup = np.concatenate([world.cust_signup, signup])
    world.cust_optin = np.concatenate([world.cust_optin, rng.random(n) < 0.2])
    world.cust_devices = np.concatenate([world.cust_devices, *devices])
    world.cust_dev_off = np.concatenate(
        [world.cust_dev_off, world.cust_dev_off[-1] + np.cumsum([len(d) for d in devices])]
    )
    world.cust_ips = np.concatenate([world.cust_ips, *ips])
    world.cust_ip_off = np.concatenate(
        [world.cust_ip_off, world.cust_ip_off[-1] + np.cumsum([len(d) for d in ips])]
    )
    return np.arange(first, first + n)


def set_capacity(world: World, wh_units_per_day: np.ndarray) -> None:
    """Outbound capacity: planned demand plus headroom, so promotions fit but the peak binds."""
    headroom = np.where(world.wh_central, 1.5, 1.35)
    world.wh_capacity = np.maximum(30, np.round(wh_units_per_day * headroom, -1)).astype(np.int64)


def warehouse_table(world: World) -> pa.Table:
    c = world.wh_city
    return pa.table(
        {
            "warehouse_id": [w[0] for w in WAREHOUSES],
            "name": [
                f"{w[1]} {'Central' if w[2] == 'central' else 'Forward'} Fulfilment Center"
                for w in WAREHOUSES
            ],
            "warehouse_type": [w[2] for w in WAREHOUSES],
            "city": geo.CITY_NAMES[c].tolist(),
            "country_code": geo.CITY_COUNTRY[c].tolist(),
            "latitude": geo.CITY_LAT[c],
            "longitude": geo.CITY_LON[c],
            "timezone": [geo.COUNTRIES[x].iana for x in geo.CITY_COUNTRY[c]],
            "outbound_capacity_per_day": world.wh_capacity,
            "opened_on": pa.array(
                [dt.date(w[3], 3 + i % 8, 1 + i) for i, w in enumerate(WAREHOUSES)]
            ),
        }
    )


def customer_table(world: World, rng: np.random.Generator) -> pa.Table:
    """CRM export: one row per account, with ragged device and IP lists."""
    n = world.n_customers
    lang = world.cust_lang
    li = map_values(lang, {la: i for i, la in enumerate(vocab.LANGUAGES)})
    firsts = [x for la in vocab.LANGUAGES for x in vocab.FIRST_NAMES[la]]
    lasts = [x for la in vocab.LANGUAGES for x in vocab.LAST_NAMES[la]]
    f_off = np.cumsum([0] + [len(vocab.FIRST_NAMES[la]) for la in vocab.LANGUAGES])
    l_off = np.cumsum([0] + [len(vocab.LAST_NAMES[la]) for la in vocab.LANGUAGES])
    fi = f_off[li] + (rng.random(n) * (f_off[li + 1] - f_off[li])).astype(int)
    la_ = l_off[li] + (rng.random(n) * (l_off[li + 1] - l_off[li])).astype(int)
    first, last = pick(firsts, fi), pick(lasts, la_)
    # mailbox names are ASCII: strip accents (NFKD) and anything else non-ASCII
    local = pc.utf8_normalize(pc.utf8_lower(cat(first, ".", last)), "NFKD")
    local = pc.replace_substring_regex(local, r"[^a-z.]", "")
    email = cat(
        local,
        num_str(rng.integers(1, 99, n)),
        "@",
        pick(vocab.EMAIL_DOMAINS, rng.integers(0, len(vocab.EMAIL_DOMAINS), n)),
    )
    country = geo.CITY_COUNTRY[world.cust_city]
    phone_prefix = pa.array(map_values(country, {c: geo.COUNTRIES[c].phone for c in geo.COUNTRIES}))
    phone = cat(
        phone_prefix,
        " ",
        num_str(rng.integers(100, 999, n)),
        " ",
        num_str(rng.integers(1_000_000, 9_999_999, n)),
    )
    rule = geo.country_tz_rule_index(country)
    signup = iso_local(world.cust_signup, utc_offset_min(rule, world.cust_signup))
    book = world.addresses.freeze()
    devices = list_array(
        pa.array(world.cust_dev_off.astype(np.int32)), hex_str(world.cust_devices, "dev_")
    )
    ips = list_array(pa.array(world.cust_ip_off.astype(np.int32)), dotted_ip(world.cust_ips))
    return pa.table(
        {
            "customer_id": customer_ids(np.arange(n)),
            "full_name": cat(first, " ", last),
            "email": email,
            "phone": phone,
            "home_address": address_struct(book, world.cust_home),
            "tier": pick(["standard", "silver", "gold", "platinum"], world.cust_tier),
            "language": pa.array(lang.astype(str)),
            "signup_at": signup,
            "marketing_opt_in": world.cust_optin,
            "devices": devices,
            "ip_addresses": ips,
        }
    )


def customer_ids(idx: np.ndarray) -> pa.Array:
    return cat("CUS-", num_str(np.asarray(idx) + 1, 7))


def device_ids(dev: np.ndarray) -> pa.Array:
    return hex_str(dev, "dev_")
