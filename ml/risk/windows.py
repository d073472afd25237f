"""Sliding-window aggregates over each entity's orders, in time order, linear in the orders.

The risk features' reference definition (:func:`ml.risk.features.feature_sql` with
``pairs=True``) joins every order to its entity's orders of the last 90 days: the pairs grow
with the square of a busy entity's orders (an IP network or a device shared by thousands), and
a million orders took ten minutes. Here each entity's orders are sorted once by (entity, time)
and every window is a range of that order, found by binary search:

* counts and sums: differences of prefix sums;
* maxima: a sparse table (the maximum of two overlapping power-of-two blocks);
* distinct counterparts (devices per card...): each occurrence of a pair counts from
  ``max(its time, its previous occurrence + w)`` until ``its time + w``, so the distinct count
  at ``t`` is a prefix sum of +1/-1 events at or before ``t``;
* the previous order and the first one in 90 days: neighbours in the same order.

A window ``w`` up to order ``o`` holds the entity's orders with ``t > t_o - w`` and
``t <= t_o`` (orders at the same instant as ``o`` included), exactly as the reference. Times are
integer microseconds, so both bounds are exact; ``tests/test_risk_features.py`` checks every
feature against the reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

US_PER_S = 1_000_000


@dataclass
class Timeline:
    """One entity's orders sorted by (entity, time), with what every window search needs."""

    rows: np.ndarray  # positions in the input, in sorted order
    seg: np.ndarray  # entity code per sorted row
    t: np.ndarray  # time (us) per sorted row
    key: np.ndarray  # seg * M + rank of t among all times: increasing
    times: np.ndarray  # every distinct time of the input, sorted
    scale: int  # M: more than the number of distinct times

    @classmethod
    def build(cls, entity: np.ndarray, t_us: np.ndarray, times: np.ndarray) -> Timeline:
        """``entity``: integer codes, negative where the order has no such entity."""
        known = np.flatnonzero(entity >= 0)
        codes = entity[known].astype(np.int64)
        order = np.lexsort((t_us[known], codes))
        rows, seg = known[order], codes[order]
        t = t_us[rows]
        scale = len(times) + 1
        key = seg * scale + np.searchsorted(times, t)
        return cls(rows, seg, t, key, times, scale)

    def window(self, span_us: int) -> tuple[np.ndarray, np.ndarray]:
        """``[start, end)`` of each row's window: same entity, ``t > t_row - span``, up to the
        row's instant (its peers at that instant included)."""
        end = np.searchsorted(self.key, self.key, side="right")
        first = np.searchsorted(self.times, self.t - span_us, side="right")
        start = np.searchsorted(self.key, self.seg * self.scale + first, side="left")
        return start, end

    def peers(self) -> tuple[np.ndarray, np.ndarray]:
        """``[start, end)`` of the rows at each row's very instant."""
        return (
            np.searchsorted(self.key, self.key, side="left"),
            np.searchsorted(self.key, self.key, side="right"),
        )


def prefix(values: np.ndarray) -> np.ndarray:
    """Prefix sums with a leading zero: ``sum(values[s:e]) = p[e] - p[s]``."""
    out = np.zeros(len(values) + 1, dtype=np.float64 if values.dtype.kind == "f" else np.int64)
    np.cumsum(values, out=out[1:])
    return out


class RangeMax:
    """Maximum of ``values[s:e]`` for many non-empty ranges (a sparse table)."""

    def __init__(self, values: np.ndarray, longest: int) -> None:
        self.levels = [values]
        width = 1
        while width * 2 <= max(longest, 1):
            last = self.levels[-1]
            nxt = last.copy()
            nxt[: len(last) - width] = np.maximum(last[: len(last) - width], last[width:])
            self.levels.append(nxt)
            width *= 2

    def query(self, start: np.ndarray, end: np.ndarray) -> np.ndarray:
        length = end - start
        level = np.floor(np.log2(np.maximum(length, 1))).astype(np.int64)
        out = np.full(len(start), -np.inf)
        for k in np.unique(level):
            sel = level == k
            table = self.levels[k]
            out[sel] = np.maximum(table[start[sel]], table[end[sel] - (1 << k)])
        return out


def codes(values: pd.Series) -> np.ndarray:
    """Integer codes of a key column, -1 where it is null (what the functions here take)."""
    return pd.factorize(values, use_na_sentinel=True)[0].astype(np.int64)


def distinct_in_windows(
    tl: Timeline, other: np.ndarray, spans: dict[str, int]
) -> dict[str, np.ndarray]:
    """Per sorted row and window: distinct ``other`` codes (input order; -1 is null) in it."""
    vals = other[tl.rows]
    has = np.flatnonzero(vals >= 0)
    if len(has) == 0:
        return {w: np.zeros(len(tl.rows), dtype=np.int64) for w in spans}
    seg, ids, t = tl.seg[has], vals[has], tl.t[has]
    order = np.lexsort((t, ids, seg))
    seg, ids, t = seg[order], ids[order], t[order]
    same = np.zeros(len(t), dtype=bool)
    same[1:] = (seg[1:] == seg[:-1]) & (ids[1:] == ids[:-1])
    prev = np.empty_like(t)
    prev[1:] = t[:-1]
    ev_seg = np.concatenate([seg, seg])
    ev_step = np.concatenate([np.ones(len(t), np.int64), -np.ones(len(t), np.int64)])
    out = {}
    for win, span in spans.items():
        # counted from max(t, previous + span) until t + span (exclusive): +1 and -1 events
        begins = np.where(same, np.maximum(t, prev + span), t)
        ev_time = np.concatenate([begins, t + span])
        # an event at e counts for a row at u iff e <= u iff (first time >= e) <= rank of u
        ev_key = ev_seg * tl.scale + np.searchsorted(tl.times, ev_time, side="left")
        order = np.argsort(ev_key, kind="stable")
        running = prefix(ev_step[order])
        out[win] = running[np.searchsorted(ev_key[order], tl.key, side="right")]
    return out


def whole_seconds(t_us: np.ndarray) -> np.ndarray:
    """Seconds as DuckDB's ``date_diff('second', ...)`` counts them (boundaries crossed)."""
    return np.floor_divide(t_us, US_PER_S)
