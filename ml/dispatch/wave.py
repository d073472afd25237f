"""A dispatch wave: the order lines of one day, the stock at its start and the warehouses' capacity,
with every order's candidate lanes priced by the network.

Built from plain DataFrames (``ml.dispatch.store.load_wave`` reads them from the lake), so the
planner, the baseline and the tests share one shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd

from ml.dispatch.config import DispatchPolicy
from ml.dispatch.network import GREEN, STD, Lanes, Network, delivery_dates

LINE_COLUMNS = [
    "order_line_id",
    "order_id",
    "line_no",
    "sku_id",
    "quantity",
    "line_weight_kg",
    "promise_type",
    "shipping_country_code",
    "is_eu_destination",
    "ship_lat",
    "ship_lon",
    "local_order_hour",
    "promised_delivery_date",
    "ordered_at",
]


class WaveError(ValueError):
    """The wave's input is unusable (the message says what is missing)."""


@dataclass
class Options:
    """Candidate (order, warehouse, variant) shipments with their lane economics."""

    order: np.ndarray  # order index
    wh: np.ndarray  # warehouse index
    variant: np.ndarray  # STD or GREEN
    fixed_eur: np.ndarray
    eur_per_t: np.ndarray
    kg_co2e_per_t: np.ndarray
    transit_days: np.ndarray
    on_time: np.ndarray  # leaving on the order's ship date, delivered by the promise
    modes: np.ndarray
    holds_all: np.ndarray  # the warehouse holds every line of the order at the wave's start

    @classmethod
    def empty(cls) -> Options:
        ints, floats, flags = (np.zeros(0, dtype=t) for t in (np.int64, float, bool))
        return cls(
            ints, ints, ints, floats, floats, floats, ints, flags, np.zeros(0, object), flags
        )


@dataclass
class Wave:
    wave_date: date
    lines: pd.DataFrame  # LINE_COLUMNS, sorted by ordered_at then line
    orders: pd.DataFrame  # one row per order, index = order index used by ``lines.order_idx``
    stock: np.ndarray  # (warehouses, skus) units available at the wave's start
    skus: np.ndarray  # sku_id per stock column
    network: Network
    policy: DispatchPolicy
    options: Options = field(init=False)
    can_meet_promise: np.ndarray = field(init=False)  # per order: a lane + stock could do it

    @property
    def capacity(self) -> np.ndarray:
        return self.network.capacity

    @classmethod
    def build(
        cls,
        wave_date: date,
        lines: pd.DataFrame,
        stock: pd.DataFrame,
        network: Network,
        policy: DispatchPolicy,
    ) -> Wave:
        """``lines``: LINE_COLUMNS; ``stock``: warehouse_id, sku_id, available_qty."""
        missing = set(LINE_COLUMNS) - set(lines.columns)
        if missing:
            raise WaveError(f"order lines lack columns {sorted(missing)}")
        lines = lines.sort_values(["ordered_at", "order_id", "line_no"], kind="stable")
        lines = lines.reset_index(drop=True).copy()
        lines["quantity"] = lines["quantity"].fillna(0).astype(np.int64)
        lines["line_weight_kg"] = lines["line_weight_kg"].fillna(0.0).astype(float)
        orders = lines.drop_duplicates("order_id")[
            [
                "order_id",
                "promise_type",
                "shipping_country_code",
                "is_eu_destination",
                "ship_lat",
                "ship_lon",
                "local_order_hour",
                "promised_delivery_date",
                "ordered_at",
            ]
        ].reset_index(drop=True)
        orders["order_idx"] = np.arange(len(orders))
        lines["order_idx"] = lines["order_id"].map(orders.set_index("order_id")["order_idx"])
        cutoff = policy.network.cutoff_local_hour
        late_order = orders["local_order_hour"].fillna(0).to_numpy() >= cutoff
        wave_day = np.datetime64(wave_date, "D")
        orders["ship_date"] = wave_day + late_order.astype("timedelta64[D]")
        promised = pd.to_datetime(orders["promised_delivery_date"]).to_numpy("datetime64[D]")
        orders["promised"] = promised
        weights = lines.groupby("order_idx")["line_weight_kg"].sum()
        orders["weight_kg"] = weights.reindex(orders["order_idx"]).to_numpy()
        skus = np.unique(np.concatenate([lines["sku_id"].to_numpy(str), np.array([], str)]))
        sku_pos = {s: i for i, s in enumerate(skus)}
        lines["sku_idx"] = lines["sku_id"].map(sku_pos).astype(np.int64)
        matrix = np.zeros((len(network.warehouses), len(skus)), dtype=np.int64)
        if not stock.empty:
            st = stock[stock["sku_id"].isin(sku_pos) & stock["warehouse_id"].isin(network.index)]
            w = st["warehouse_id"].map(network.index).to_numpy(np.int64)
            s = st["sku_id"].map(sku_pos).to_numpy(np.int64)
            np.add.at(matrix, (w, s), np.maximum(st["available_qty"].to_numpy(np.int64), 0))
        wave = cls(wave_date, lines, orders, matrix, skus, network, policy)
        if len(lines):
            wave._price_options()
        else:  # a day without orders: nothing to plan, and a re-run still clears the day
            wave.options, wave.can_meet_promise = Options.empty(), np.zeros(0, dtype=bool)
        return wave

    # ---------------------------------------------------------------------------- options

    def _price_options(self) -> None:
        o, n_wh = self.orders, len(self.network.warehouses)
        n = len(o)
        pair_order = np.repeat(np.arange(n), n_wh)
        pair_wh = np.tile(np.arange(n_wh), n)
        lanes: Lanes = self.network.lanes(
            o["ship_lat"].to_numpy(float)[pair_order],
            o["ship_lon"].to_numpy(float)[pair_order],
            o["shipping_country_code"].to_numpy(object)[pair_order],
            o["is_eu_destination"].to_numpy(bool)[pair_order],
            pair_wh,
        )
        # which warehouses hold each line's units at the start of the wave
        li = self.lines
        has = self.stock[:, li["sku_idx"].to_numpy()] >= li["quantity"].to_numpy()[None, :]
        order_lines = np.bincount(li["order_idx"], minlength=n)
        covered = np.zeros((n, n_wh), dtype=np.int64)
        np.add.at(covered, li["order_idx"].to_numpy(), has.T.astype(np.int64))
        any_line = (covered > 0).ravel()
        all_lines = (covered == order_lines[:, None]).ravel()
        weight = o["weight_kg"].to_numpy()[pair_order]
        std_cost = lanes.cost_eur(weight, np.zeros(len(pair_wh), dtype=np.int64))
        # keep the k cheapest warehouses holding any of the order's products, plus the nearest
        # one with stock for each line (the baseline's choices, so its plan is always a candidate)
        k = self.policy.solver.candidates_per_order
        rank_cost = np.where(any_line, std_cost, np.inf).reshape(n, n_wh)
        keep = np.zeros((n, n_wh), dtype=bool)
        top = np.argsort(rank_cost, axis=1)[:, :k]
        keep[np.arange(n)[:, None], top] = True
        keep &= np.isfinite(rank_cost)
        dist = self.network.straight_km(
            o["ship_lat"].to_numpy(float)[li["order_idx"]][:, None],
            o["ship_lon"].to_numpy(float)[li["order_idx"]][:, None],
            np.arange(n_wh)[None, :],
        )
        nearest = np.argmin(np.where(has.T, dist, np.inf), axis=1)
        ok = has.T.any(axis=1)
        keep[li["order_idx"].to_numpy()[ok], nearest[ok]] = True
        self._lanes, self._keep, self._all_lines = lanes, keep, all_lines
        self._make_options()

    def ensure_candidates(self, order_idx: np.ndarray, wh: np.ndarray) -> None:
        """Add (order, warehouse) pairs to the candidates (e.g. the baseline's choices)."""
        ok = wh >= 0
        missing = ~self._keep[order_idx[ok], wh[ok]]
        if missing.any():
            self._keep[order_idx[ok][missing], wh[ok][missing]] = True
            self._make_options()

    def _make_options(self) -> None:
        o, n_wh = self.orders, len(self.network.warehouses)
        n = len(o)
        lanes, all_lines = self._lanes, self._all_lines
        pair_order = np.repeat(np.arange(n), n_wh)
        pair_wh = np.tile(np.arange(n_wh), n)
        keep = self._keep.ravel()
        ship_date = o["ship_date"].to_numpy("datetime64[D]")[pair_order]
        promised = o["promised"].to_numpy("datetime64[D]")[pair_order]
        parts = []
        for variant in (STD, GREEN):
            sel = keep & lanes.available[:, variant]
            idx = np.flatnonzero(sel)
            arrive = delivery_dates(ship_date[idx], lanes.transit_days[idx, variant])
            parts.append(
                (
                    idx,
                    np.full(len(idx), variant),
                    arrive <= promised[idx],
                )
            )
        idx = np.concatenate([p[0] for p in parts])
        var = np.concatenate([p[1] for p in parts])
        on_time = np.concatenate([p[2] for p in parts])
        order_sort = np.lexsort((var, pair_wh[idx], pair_order[idx]))
        idx, var, on_time = idx[order_sort], var[order_sort], on_time[order_sort]
        self.options = Options(
            order=pair_order[idx],
            wh=pair_wh[idx],
            variant=var,
            fixed_eur=lanes.fixed_eur[idx, var],
            eur_per_t=lanes.eur_per_t[idx, var],
            kg_co2e_per_t=lanes.kg_co2e_per_t[idx, var],
            transit_days=lanes.transit_days[idx, var],
            on_time=on_time,
            modes=lanes.modes[idx, var],
            holds_all=all_lines[idx],
        )
        # the promise is reachable when one warehouse holds every line and a lane is in time
        meet = np.zeros(n, dtype=bool)
        full = all_lines[idx] & on_time
        meet[pair_order[idx][full]] = True
        self.can_meet_promise = meet

    def lane(self, order_idx: np.ndarray, wh: np.ndarray, variant: np.ndarray) -> Lanes:
        """Lane economics for arbitrary (order, warehouse) pairs (the plans' shipments)."""
        o = self.orders
        return self.network.lanes(
            o["ship_lat"].to_numpy(float)[order_idx],
            o["ship_lon"].to_numpy(float)[order_idx],
            o["shipping_country_code"].to_numpy(object)[order_idx],
            o["is_eu_destination"].to_numpy(bool)[order_idx],
            wh,
        )
