"""The transport network as the planner prices it: lanes from a warehouse to a destination.

A lane is up to three legs, the way the carriers run them:

* a warehouse within ``direct_van_km`` in the customer's country delivers by van;
* other EU destinations get a road line-haul (articulated above ``artic_above_km``, rigid below)
  to the destination's hub, then a van round of ``last_mile_km``;
* destinations outside the EU go by road to the air gateway, fly, then take the van.

Each leg is priced with the reference seeds the lake uses for the carbon footprint
(``freight_rates``: fixed EUR per shipment + EUR per tonne-km; ``freight_emission_factors``:
well-to-wheel g CO2e per tonne-km, GLEC / ISO 14083) and its green alternative comes from the
same ``green_mode_shift`` rule as ``int_shipment_legs__costed`` (long road line-haul by rail, air
by sea, the rail/sea detour factor, extra days). So a lane's cost and CO2e are linear in the
shipment's weight: ``fixed_eur + t * eur_per_t`` and ``t * kg_co2e_per_t``. The exception
alternatives (issue 6) price "reship from another warehouse" with this module, not a copy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml.dispatch.config import NetworkPolicy

EARTH_KM = 6371.0088
VAN = "van_diesel_average"
STD, GREEN = 0, 1
VARIANTS = ("standard", "green")


class NetworkError(ValueError):
    """Reference data the network needs is missing or inconsistent."""


def haversine_km(lat1, lon1, lat2, lon2) -> np.ndarray:
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dphi = p2 - p1
    dl = np.radians(np.asarray(lon2) - np.asarray(lon1))
    a = np.sin(dphi / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * EARTH_KM * np.arcsin(np.sqrt(np.clip(a, 0, 1)))


@dataclass(frozen=True)
class Lanes:
    """Lane economics per (pair, variant): arrays of shape (pairs, 2); variant 1 is the green plan.

    ``available[:, GREEN]`` is False where no leg has a greener alternative (the green plan would
    be the standard one)."""

    fixed_eur: np.ndarray
    eur_per_t: np.ndarray
    kg_co2e_per_t: np.ndarray
    transit_days: np.ndarray
    available: np.ndarray
    modes: np.ndarray  # "road>last_mile" per (pair, variant)
    distance_km: np.ndarray

    def cost_eur(self, weight_kg: np.ndarray, variant: np.ndarray) -> np.ndarray:
        idx = np.arange(len(variant))
        return self.fixed_eur[idx, variant] + weight_kg / 1000 * self.eur_per_t[idx, variant]

    def kg_co2e(self, weight_kg: np.ndarray, variant: np.ndarray) -> np.ndarray:
        return weight_kg / 1000 * self.kg_co2e_per_t[np.arange(len(variant)), variant]


class Network:
    """Warehouses plus the reference seeds; prices lanes for arrays of (destination, warehouse)."""

    def __init__(
        self,
        warehouses: pd.DataFrame,
        factors: pd.DataFrame,
        rates: pd.DataFrame,
        shifts: pd.DataFrame,
        policy: NetworkPolicy,
    ) -> None:
        need = {"warehouse_id", "lat", "lon", "country_code", "outbound_capacity_per_day"}
        missing = need - set(warehouses.columns)
        if missing or warehouses.empty:
            raise NetworkError(f"warehouses need columns {sorted(need)}; missing {sorted(missing)}")
        self.warehouses = warehouses.reset_index(drop=True)
        self.policy = policy
        self.wh_lat = self.warehouses["lat"].to_numpy(float)
        self.wh_lon = self.warehouses["lon"].to_numpy(float)
        self.wh_cc = self.warehouses["country_code"].to_numpy(object)
        self.capacity = self.warehouses["outbound_capacity_per_day"].to_numpy(np.int64)
        self.index = {w: i for i, w in enumerate(self.warehouses["warehouse_id"])}
        self._factor = dict(
            zip(factors["vehicle_class"], factors["wtw_g_co2e_per_tkm"].astype(float), strict=True)
        )
        self._mode = dict(zip(factors["vehicle_class"], factors["mode"], strict=True))
        self._fixed = dict(
            zip(rates["vehicle_class"], rates["fixed_eur_per_shipment"].astype(float), strict=True)
        )
        self._per_tkm = dict(
            zip(rates["vehicle_class"], rates["eur_per_tonne_km"].astype(float), strict=True)
        )
        self._shift = {
            r.from_vehicle_class: (
                r.to_vehicle_class,
                float(r.min_distance_km),
                float(r.distance_factor),
                int(r.extra_days),
            )
            for r in shifts.itertuples()
        }
        used = {VAN, "artic_gt33t", "rigid_7.5-17t", "air_short_haul", "air_long_haul"}
        used |= {v[0] for v in self._shift.values()}
        for name, table in (("emission factor", self._factor), ("freight rate", self._fixed)):
            absent = sorted(used - set(table))
            if absent:
                raise NetworkError(f"no {name} for vehicle class(es) {absent}")

    @property
    def van_g_per_tkm(self) -> float:
        """Well-to-wheel intensity of the last-mile van (g CO2e per tonne-km)."""
        return self._factor[VAN]

    # -------------------------------------------------------------------------- lanes

    def _road_class(self, km: np.ndarray) -> np.ndarray:
        return np.where(km > self.policy.artic_above_km, "artic_gt33t", "rigid_7.5-17t")

    def _road_days(self, km: np.ndarray) -> np.ndarray:
        p = self.policy
        extra = np.ceil(np.maximum(km - p.overnight_road_km, 0) / p.road_km_per_day)
        return 1 + extra.astype(np.int64)

    def legs(
        self, lat: np.ndarray, lon: np.ndarray, cc: np.ndarray, eu: np.ndarray, wh: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The standard plan's legs per pair: vehicle classes and km (pairs x 3; "" = no leg),
        and the transit days from the line-haul's departure to delivery."""
        p = self.policy
        n = len(wh)
        cls = np.full((n, 3), "", dtype=object)
        km = np.zeros((n, 3))
        d = haversine_km(self.wh_lat[wh], self.wh_lon[wh], lat, lon)
        direct = eu & (d <= p.direct_van_km) & (self.wh_cc[wh] == cc)
        linehaul = eu & ~direct
        overseas = ~eu
        cls[direct, 0] = VAN
        km[direct, 0] = np.maximum(1.0, d[direct] * p.detour["last_mile"])
        road = np.maximum(1.0, d * p.detour["road"])
        cls[linehaul, 0] = self._road_class(road[linehaul])
        km[linehaul, 0] = road[linehaul]
        cls[linehaul, 1], km[linehaul, 1] = VAN, p.last_mile_km
        gw = p.air_gateway
        to_gw = np.maximum(1.0, haversine_km(self.wh_lat[wh], self.wh_lon[wh], gw.lat, gw.lon))
        to_gw = to_gw * p.detour["road"]
        air = np.maximum(1.0, haversine_km(gw.lat, gw.lon, lat, lon) * p.detour["air"])
        cls[overseas, 0] = self._road_class(to_gw[overseas])
        km[overseas, 0] = to_gw[overseas]
        cls[overseas, 1] = np.where(air[overseas] > 3700, "air_long_haul", "air_short_haul")
        km[overseas, 1] = air[overseas]
        cls[overseas, 2], km[overseas, 2] = VAN, p.last_mile_km
        days = np.ones(n, dtype=np.int64)
        days[linehaul] = self._road_days(road[linehaul])
        days[overseas] = self._road_days(to_gw[overseas]) + p.overseas_air_days
        return cls, km, days

    def green(self, cls: np.ndarray, km: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each leg re-planned by ``green_mode_shift`` (as in ``int_shipment_legs__costed``):
        new classes, km and the extra days (max over the legs shifted)."""
        g_cls, g_km = cls.copy(), km.copy()
        extra = np.zeros(len(cls), dtype=np.int64)
        for frm, (to, min_km, factor, days) in self._shift.items():
            hit = (cls == frm) & (km >= min_km)
            g_cls[hit] = to
            g_km[hit] = km[hit] * factor
            extra = np.maximum(extra, np.where(hit.any(axis=1), days, 0))
        return g_cls, g_km, extra

    def _price(self, cls: np.ndarray, km: np.ndarray) -> tuple[np.ndarray, ...]:
        has = cls != ""
        fixed = np.zeros(len(cls))
        per_t = np.zeros(len(cls))
        co2 = np.zeros(len(cls))
        for name in np.unique(cls[has]):
            hit = cls == name
            fixed += hit.sum(axis=1) * self._fixed[name]
            per_t += np.where(hit, km, 0).sum(axis=1) * self._per_tkm[name]
            co2 += np.where(hit, km, 0).sum(axis=1) * self._factor[name] / 1000.0
        modes = np.full(len(cls), "", dtype=object)
        for j in range(cls.shape[1]):
            m = np.array([self._mode.get(c, "") for c in cls[:, j]], dtype=object)
            sep = np.where((modes != "") & (m != ""), ">", "")
            modes = modes + sep + m
        return fixed, per_t, co2, modes

    def lanes(
        self, lat: np.ndarray, lon: np.ndarray, cc: np.ndarray, eu: np.ndarray, wh: np.ndarray
    ) -> Lanes:
        """Both variants' economics for every (destination, warehouse) pair."""
        lat, lon = np.asarray(lat, float), np.asarray(lon, float)
        cc, eu, wh = np.asarray(cc, object), np.asarray(eu, bool), np.asarray(wh, np.int64)
        cls, km, days = self.legs(lat, lon, cc, eu, wh)
        g_cls, g_km, extra = self.green(cls, km)
        f0, v0, c0, m0 = self._price(cls, km)
        f1, v1, c1, m1 = self._price(g_cls, g_km)
        return Lanes(
            fixed_eur=np.stack([f0, f1], axis=1),
            eur_per_t=np.stack([v0, v1], axis=1),
            kg_co2e_per_t=np.stack([c0, c1], axis=1),
            transit_days=np.stack([days, days + extra], axis=1),
            available=np.stack([np.ones(len(wh), bool), extra > 0], axis=1),
            modes=np.stack([m0, m1], axis=1),
            distance_km=np.stack([km.sum(axis=1), g_km.sum(axis=1)], axis=1),
        )

    def straight_km(self, lat: np.ndarray, lon: np.ndarray, wh: np.ndarray) -> np.ndarray:
        return haversine_km(self.wh_lat[wh], self.wh_lon[wh], lat, lon)


def delivery_dates(ship_date: np.ndarray, transit_days: np.ndarray) -> np.ndarray:
    """Delivery day (datetime64[D]) of a shipment leaving on ``ship_date``; vans do not run on
    Sundays, so a Sunday arrival is delivered on Monday."""
    day = np.asarray(ship_date, "datetime64[D]") + np.asarray(transit_days, "timedelta64[D]")
    sunday = (day.astype(np.int64) + 3) % 7 == 6  # 1970-01-01 was a Thursday
    return day + sunday.astype("timedelta64[D]")
