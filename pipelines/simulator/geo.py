"""Real places: countries, cities with true coordinates, and distance helpers.

Everything spatial in the world (customers' homes, warehouses, hubs, ports, IP geolocation)
hangs off this one table so that distances, time zones and languages stay mutually consistent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EARTH_RADIUS_KM = 6371.0


@dataclass(frozen=True)
class Country:
    code: str
    tz_rule: str
    iana: str
    languages: tuple[str, ...]
    in_eu: bool
    phone: str
    postal: str  # pattern: 9 = digit, A = letter


COUNTRIES: dict[str, Country] = {
    c.code: c
    for c in [
        Country("DE", "CET", "Europe/Berlin", ("de",), True, "+49", "99999"),
        Country("AT", "CET", "Europe/Vienna", ("de",), True, "+43", "9999"),
        Country("FR", "CET", "Europe/Paris", ("fr",), True, "+33", "99999"),
        Country("BE", "CET", "Europe/Brussels", ("nl", "fr"), True, "+32", "9999"),
        Country("LU", "CET", "Europe/Luxembourg", ("fr", "de"), True, "+352", "L-9999"),
        Country("NL", "CET", "Europe/Amsterdam", ("nl",), True, "+31", "9999 AA"),
        Country("ES", "CET", "Europe/Madrid", ("es",), True, "+34", "99999"),
        Country("IT", "CET", "Europe/Rome", ("it",), True, "+39", "99999"),
        Country("PL", "CET", "Europe/Warsaw", ("pl",), True, "+48", "99-999"),
        Country("PT", "WET", "Europe/Lisbon", ("pt",), True, "+351", "9999-999"),
        Country("IE", "WET", "Europe/Dublin", ("en",), True, "+353", "A99 A9A9"),
        Country("US", "US_EAST", "America/New_York", ("en",), False, "+1", "99999"),
        Country("CA", "US_EAST", "America/Toronto", ("en", "fr"), False, "+1", "A9A 9A9"),
        Country("CN", "CHINA", "Asia/Shanghai", ("zh",), False, "+86", "999999"),
        Country("SG", "SINGAPORE", "Asia/Singapore", ("en", "zh"), False, "+65", "999999"),
        Country("BR", "BRAZIL", "America/Sao_Paulo", ("pt",), False, "+55", "99999-999"),
    ]
}
COUNTRY_CODES = list(COUNTRIES)

# name, country, lat, lon, metro population (millions), UN/LOCODE (ports/terminals)
CITIES: list[tuple[str, str, float, float, float, str]] = [
    ("Berlin", "DE", 52.5200, 13.4050, 4.5, "DEBER"),
    ("Hamburg", "DE", 53.5511, 9.9937, 3.2, "DEHAM"),
    ("Munich", "DE", 48.1351, 11.5820, 2.9, "DEMUC"),
    ("Cologne", "DE", 50.9375, 6.9603, 2.1, "DECGN"),
    ("Frankfurt", "DE", 50.1109, 8.6821, 2.3, "DEFRA"),
    ("Stuttgart", "DE", 48.7758, 9.1829, 1.8, "DESTR"),
    ("Leipzig", "DE", 51.3397, 12.3731, 1.0, "DELEJ"),
    ("Erfurt", "DE", 50.9848, 11.0299, 0.4, "DEERF"),
    ("Dortmund", "DE", 51.5136, 7.4653, 1.9, "DEDTM"),
    ("Vienna", "AT", 48.2082, 16.3738, 2.6, "ATVIE"),
    ("Graz", "AT", 47.0707, 15.4395, 0.6, "ATGRZ"),
    ("Paris", "FR", 48.8566, 2.3522, 11.0, "FRPAR"),
    ("Lyon", "FR", 45.7640, 4.8357, 2.3, "FRLYS"),
    ("Marseille", "FR", 43.2965, 5.3698, 1.9, "FRMRS"),
    ("Toulouse", "FR", 43.6047, 1.4442, 1.4, "FRTLS"),
    ("Lille", "FR", 50.6292, 3.0573, 1.2, "FRLIL"),
    ("Bordeaux", "FR", 44.8378, -0.5792, 1.3, "FRBOD"),
    ("Brussels", "BE", 50.8503, 4.3517, 2.1, "BEBRU"),
    ("Antwerp", "BE", 51.2194, 4.4025, 1.1, "BEANR"),
    ("Luxembourg", "LU", 49.6116, 6.1319, 0.6, "LULUX"),
    ("Amsterdam", "NL", 52.3676, 4.9041, 2.5, "NLAMS"),
    ("Rotterdam", "NL", 51.9244, 4.4777, 1.8, "NLRTM"),
    ("Utrecht", "NL", 52.0907, 5.1214, 0.9, "NLUTC"),
    ("Venlo", "NL", 51.3704, 6.1724, 0.3, "NLVEN"),
    ("Madrid", "ES", 40.4168, -3.7038, 6.7, "ESMAD"),
    ("Barcelona", "ES", 41.3874, 2.1686, 5.6, "ESBCN"),
    ("Valencia", "ES", 39.4699, -0.3763, 1.6, "ESVLC"),
    ("Seville", "ES", 37.3891, -5.9845, 1.5, "ESSVQ"),
    ("Zaragoza", "ES", 41.6488, -0.8891, 0.8, "ESZAZ"),
    ("Milan", "IT", 45.4642, 9.1900, 4.3, "ITMIL"),
    ("Rome", "IT", 41.9028, 12.4964, 4.3, "ITROM"),
    ("Naples", "IT", 40.8518, 14.2681, 3.1, "ITNAP"),
    ("Turin", "IT", 45.0703, 7.6869, 2.2, "ITTRN"),
    ("Bologna", "IT", 44.4949, 11.3426, 1.0, "ITBLQ"),
    ("Warsaw", "PL", 52.2297, 21.0122, 3.1, "PLWAW"),
    ("Krakow", "PL", 50.0647, 19.9450, 1.5, "PLKRK"),
    ("Wroclaw", "PL", 51.1079, 17.0385, 1.2, "PLWRO"),
    ("Gdansk", "PL", 54.3520, 18.6466, 1.1, "PLGDN"),
    ("Poznan", "PL", 52.4064, 16.9252, 1.0, "PLPOZ"),
    ("Lisbon", "PT", 38.7223, -9.1393, 2.9, "PTLIS"),
    ("Porto", "PT", 41.1579, -8.6291, 1.7, "PTOPO"),
    ("Dublin", "IE", 53.3498, -6.2603, 2.0, "IEDUB"),
    ("Cork", "IE", 51.8985, -8.4756, 0.4, "IEORK"),
    ("New York", "US", 40.7128, -74.0060, 19.0, "USNYC"),
    ("Boston", "US", 42.3601, -71.0589, 4.9, "USBOS"),
    ("Toronto", "CA", 43.6532, -79.3832, 6.2, "CATOR"),
    ("Montreal", "CA", 45.5019, -73.5674, 4.3, "CAMTR"),
    ("Shanghai", "CN", 31.2304, 121.4737, 24.0, "CNSHA"),
    ("Shenzhen", "CN", 22.5431, 114.0579, 13.0, "CNSZX"),
    ("Singapore", "SG", 1.3521, 103.8198, 5.9, "SGSIN"),
    ("Sao Paulo", "BR", -23.5505, -46.6333, 22.0, "BRSAO"),
    ("Santos", "BR", -23.9608, -46.3336, 0.4, "BRSSZ"),
]
CITY_NAMES = np.array([c[0] for c in CITIES])
CITY_COUNTRY = np.array([c[1] for c in CITIES])
CITY_LAT = np.array([c[2] for c in CITIES])
CITY_LON = np.array([c[3] for c in CITIES])
CITY_POP = np.array([c[4] for c in CITIES])
CITY_LOCODE = np.array([c[5] for c in CITIES])
CITY_INDEX = {c[0]: i for i, c in enumerate(CITIES)}
CITY_EU = np.array([COUNTRIES[c].in_eu for c in CITY_COUNTRY])
CITY_TZ = np.array([list(COUNTRIES).index(c) for c in CITY_COUNTRY])

# sea ports of loading in Europe and of discharge per overseas country
EU_PORTS = ["Rotterdam", "Hamburg", "Antwerp"]
OVERSEAS_PORT = {
    "US": "New York",
    "CA": "Montreal",
    "CN": "Shanghai",
    "SG": "Singapore",
    "BR": "Santos",
}
# air gateways: Europe's express hub and the arrival airport per overseas country
EU_AIR_HUB = "Leipzig"
OVERSEAS_AIRPORT = {
    "US": "New York",
    "CA": "Toronto",
    "CN": "Shanghai",
    "SG": "Singapore",
    "BR": "Sao Paulo",
}


def country_tz_rule_index(codes: np.ndarray) -> np.ndarray:
    """Index into ``timeutil.RULE_IDS`` for each ISO country code."""
    from .timeutil import RULE_IDS

    lookup = {c: RULE_IDS.index(COUNTRIES[c].tz_rule) for c in COUNTRIES}
    uniq, inv = np.unique(codes, return_inverse=True)
    return np.array([lookup[u] for u in uniq], dtype=np.int8)[inv]


def haversine_km(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Great-circle distance in km, broadcasting over numpy arrays."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dphi = p2 - p1
    dlmb = np.radians(np.asarray(lon2) - np.asarray(lon1))
    a = np.sin(dphi / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0, 1)))


def nearest_city_in_country(lat: np.ndarray, lon: np.ndarray, country: np.ndarray) -> np.ndarray:
    """Index of the closest city of the same country (the regional hub for last-mile)."""
    d = haversine_km(lat[:, None], lon[:, None], CITY_LAT[None, :], CITY_LON[None, :])
    d = np.where(CITY_COUNTRY[None, :] == np.asarray(country)[:, None], d, np.inf)
    return np.argmin(d, axis=1)
