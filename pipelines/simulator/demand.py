"""Order volume over time: weekly rhythm, promotions, the 11.11 peak and the daily curve.

Volume is decided per day first (so the total is exactly the requested number of orders) and
then each order gets a local time of day from an hour-of-day curve in the customer's zone.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from .timeutil import DAY, HOUR, epoch_s, utc_offset_min

WEEKDAY = np.array([1.04, 1.0, 0.99, 1.01, 0.94, 0.83, 1.12])  # Mon..Sun, Sunday-evening surfing
# relative order intensity per local hour: quiet nights, lunch bump, evening peak
HOUR_CURVE = np.array(
    [
        0.6,
        0.35,
        0.2,
        0.15,
        0.15,
        0.25,
        0.6,
        1.2,
        2.0,
        2.6,
        3.0,
        3.2,
        3.6,
        3.4,
        3.1,
        3.0,
        3.2,
        3.6,
        4.2,
        5.0,
        5.4,
        4.8,
        3.4,
        1.6,
    ]
)
PEAK_SHAPE = {-3: 1.3, -2: 1.6, -1: 2.1, 0: 5.5, 1: 1.9, 2: 1.35}  # days around 11 November
PROMO_CODES = [
    ("AUTUMN15", 15),
    ("FLASH20", 20),
    ("WEEKEND10", 10),
    ("CYBER25", 25),
    ("HELLO10", 10),
    ("STYLE15", 15),
]
PEAK_CODE = ("DOUBLE11", 20)
EVERGREEN_CODE = ("WELCOME10", 10)


@dataclass
class Calendar:
    weights: np.ndarray  # relative order volume per day
    promo_idx: np.ndarray  # index into codes per day, -1 = no campaign
    codes: list[tuple[str, int]]  # (code, percent off)
    peak_factor: np.ndarray  # 1 normally, >1 around the peak (drives delays)


def build_calendar(rng: np.random.Generator, start: dt.date, days: int) -> Calendar:
    dates = [start + dt.timedelta(days=i) for i in range(days)]
    weekday = np.array([d.weekday() for d in dates])
    trend = 1 + 0.0015 * np.arange(days)  # business grows a little
    noise = rng.lognormal(0, 0.05, days)
    peak = np.ones(days)
    for i, d in enumerate(dates):
        off = (d - dt.date(d.year, 11, 11)).days
        peak[i] = PEAK_SHAPE.get(off, 1.0)
    codes = list(PROMO_CODES) + [PEAK_CODE]
    promo = np.where(rng.random(days) < 0.10, rng.integers(0, len(PROMO_CODES), days), -1)
    promo[peak > 1.5] = len(codes) - 1
    uplift = np.where((promo >= 0) & (peak <= 1.0), rng.uniform(1.3, 1.7, days), 1.0)
    w = WEEKDAY[weekday] * trend * noise * peak * uplift
    return Calendar(weights=w, promo_idx=promo, codes=codes, peak_factor=peak)


def local_times(
    rng: np.random.Generator,
    day: np.ndarray,
    tz_rule: np.ndarray,
    t0: int,
    t_end: int,
    hour_curve: np.ndarray = HOUR_CURVE,
) -> np.ndarray:
    """UTC instants whose *local* hour follows ``hour_curve`` on local day ``day``."""
    p = hour_curve / hour_curve.sum()
    sod = rng.choice(24, len(day), p=p) * HOUR + rng.integers(0, HOUR, len(day))
    guess = t0 + day.astype(np.int64) * DAY + sod
    off = utc_offset_min(tz_rule, guess)
    utc = guess - off.astype(np.int64) * 60
    # customers far west/east of UTC would spill out of the world: fold them back by a day
    utc = np.where(utc < t0, utc + DAY, utc)
    return np.where(utc >= t_end, utc - DAY, utc)


def start_epoch(start: dt.date) -> int:
    return epoch_s(start)
