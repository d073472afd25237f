"""Time zones and timestamp formatting without per-row Python.

Feeds carry local timestamps with offsets (``2026-10-24T21:05:00+02:00``), so every record needs
its producer's UTC offset at that instant. ``zoneinfo`` works per value and would dominate the
run time at millions of rows, so the few DST rules our countries use are computed here in bulk,
and strings are assembled from lookup tables (one per distinct day, one per second of a day).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

DAY = 86_400
HOUR = 3_600
MINUTE = 60

# rule id -> (standard offset in minutes, DST rule name or None)
TZ_RULES: dict[str, tuple[int, str | None]] = {
    "CET": (60, "eu"),
    "WET": (0, "eu"),
    "US_EAST": (-300, "us"),
    "CHINA": (480, None),
    "SINGAPORE": (480, None),
    "BRAZIL": (-180, None),
}
RULE_IDS = list(TZ_RULES)


def epoch_s(day: dt.date) -> int:
    """Seconds since 1970-01-01 UTC at midnight UTC of ``day``."""
    return (day - dt.date(1970, 1, 1)).days * DAY


def _last_sunday(year: int, month: int) -> dt.date:
    nxt = dt.date(year + (month == 12), month % 12 + 1, 1)
    last = nxt - dt.timedelta(days=1)
    return last - dt.timedelta(days=(last.weekday() + 1) % 7)


def _nth_sunday(year: int, month: int, n: int) -> dt.date:
    first = dt.date(year, month, 1)
    first_sun = first + dt.timedelta(days=(6 - first.weekday()) % 7)
    return first_sun + dt.timedelta(days=7 * (n - 1))


def _dst_window(rule: str, year: int) -> tuple[int, int]:
    """UTC seconds [start, end) of summer time in ``year``."""
    if rule == "eu":  # 01:00 UTC on the last Sundays of March and October
        return (epoch_s(_last_sunday(year, 3)) + HOUR, epoch_s(_last_sunday(year, 10)) + HOUR)
    # US Eastern: 02:00 local on 2nd Sunday of March (07:00 UTC) to 1st Sunday of Nov (06:00 UTC)
    return (
        epoch_s(_nth_sunday(year, 3, 2)) + 7 * HOUR,
        epoch_s(_nth_sunday(year, 11, 1)) + 6 * HOUR,
    )


def utc_offset_min(rule_idx: np.ndarray, utc_s: np.ndarray) -> np.ndarray:
    """UTC offset in minutes for each (time-zone rule index, UTC instant)."""
    rule_idx = np.asarray(rule_idx)
    utc_s = np.asarray(utc_s, dtype=np.int64)
    out = np.zeros(utc_s.shape, dtype=np.int32)
    if utc_s.size == 0:
        return out
    years = range(
        int(utc_s.min() // (365.2425 * DAY)) + 1969, int(utc_s.max() // (365.2425 * DAY)) + 1972
    )
    for r, (std, dst_rule) in enumerate(TZ_RULES.values()):
        sel = rule_idx == r
        if not sel.any():
            continue
        offs = np.full(int(sel.sum()), std, dtype=np.int32)
        if dst_rule is not None:
            t = utc_s[sel]
            summer = np.zeros(t.shape, dtype=bool)
            for y in years:
                a, b = _dst_window(dst_rule, y)
                summer |= (t >= a) & (t < b)
            offs += 60 * summer
        out[sel] = offs
    return out


_SOD_ISO = None
_SOD_HM = None


def _sod_tables() -> tuple[pa.Array, pa.Array]:
    global _SOD_ISO, _SOD_HM
    if _SOD_ISO is None:
        s = np.arange(DAY)
        h, m, sec = s // 3600, (s // 60) % 60, s % 60
        _SOD_ISO = pa.array([f"{a:02d}:{b:02d}:{c:02d}" for a, b, c in zip(h, m, sec, strict=True)])
        _SOD_HM = pa.array([f"{a:02d}:{b:02d}" for a, b in zip(h, m, strict=True)])
    return _SOD_ISO, _SOD_HM


def _offset_str(off_min: np.ndarray) -> pa.Array:
    # offsets are whole quarter hours between -12h and +14h: index a small lookup table
    table = []
    for q in range(-48, 57):
        m = q * 15
        sign = "+" if m >= 0 else "-"
        table.append(f"{sign}{abs(m) // 60:02d}:{abs(m) % 60:02d}")
    idx = (np.asarray(off_min) // 15 + 48).astype(np.int32)
    return pa.array(table).take(pa.array(idx))


def _split_local(utc_s: np.ndarray, off_min: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    local = np.asarray(utc_s, dtype=np.int64) + np.asarray(off_min, dtype=np.int64) * 60
    return local // DAY, local % DAY


def _day_strings(days: np.ndarray, fmt: str) -> pa.Array:
    lo = int(days.min()) if days.size else 0
    hi = int(days.max()) if days.size else 0
    base = dt.date(1970, 1, 1)
    table = pa.array([(base + dt.timedelta(days=d)).strftime(fmt) for d in range(lo, hi + 1)])
    return table.take(pa.array((days - lo).astype(np.int32)))


def iso_local(utc_s: np.ndarray, off_min: np.ndarray) -> pa.Array:
    """ISO-8601 strings in local time with offset, e.g. ``2026-08-20T10:15:00+02:00``."""
    days, sod = _split_local(utc_s, off_min)
    sod_iso, _ = _sod_tables()
    d = _day_strings(days, "%Y-%m-%dT")
    t = sod_iso.take(pa.array(sod.astype(np.int32)))
    return pc.binary_join_element_wise(d, t, _offset_str(off_min), "")


def rail_local(utc_s: np.ndarray, off_min: np.ndarray) -> pa.Array:
    """``DD.MM.YYYY HH:MM`` in local time, no offset (the rail carrier's format)."""
    days, sod = _split_local(utc_s, off_min)
    _, sod_hm = _sod_tables()
    d = _day_strings(days, "%d.%m.%Y")
    return pc.binary_join_element_wise(d, sod_hm.take(pa.array(sod.astype(np.int32))), " ")


def local_day(utc_s: np.ndarray, off_min: np.ndarray) -> np.ndarray:
    """Local calendar day (days since epoch) of each instant."""
    return _split_local(utc_s, off_min)[0]


def date_array(days: np.ndarray) -> pa.Array:
    """Days since epoch to an Arrow ``date32`` array."""
    return pa.array(np.asarray(days, dtype=np.int32), type=pa.date32())
