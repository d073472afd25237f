"""What comes back after the order: cancellations, fraud labels, reviews and contacts.

These feeds are where supervision for later models comes from, so they are deliberately
imperfect: fraud labels arrive weeks late and not for every fraud, some chargebacks are
"friendly fraud" on good orders, and ratings follow the delivery experience with noise.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from . import geo
from .orders import Orders
from .shipments import Shipments
from .textutil import cat, num_str, pick
from .timeutil import DAY, HOUR, MINUTE, iso_local, utc_offset_min
from .vocab import COMMENTS, LANGUAGES
from .world import World

CANCEL_REASONS = ["customer_request", "fraud_suspected", "out_of_stock", "payment_failed"]


def cancellations(rng: np.random.Generator, o: Orders) -> tuple[np.ndarray, np.ndarray]:
    """Reason (-1 = none) and time per order for cancellations decided before allocation."""
    n = o.n
    fraud = o.f["fraud"] > 0
    reason = np.full(n, -1)
    at = np.zeros(n, dtype=np.int64)
    r = rng.random(n)
    reason[r < 0.02] = 0
    bnpl = o.f["pay"] == 2
    reason[(r >= 0.02) & (r < 0.02 + np.where(bnpl, 0.025, 0.006))] = 3
    # the risk team catches some fraud up front, and annoys a few good customers doing so
    caught = np.where(fraud, 0.22, 0.0015)
    reason[(reason < 0) & (rng.random(n) < caught)] = 1
    delay = np.select(
        [reason == 0, reason == 1, reason == 3],
        [
            rng.integers(5 * MINUTE, 4 * HOUR, n),
            rng.integers(10 * MINUTE, 12 * HOUR, n),
            rng.integers(MINUTE, 30 * MINUTE, n),
        ],
        0,
    )
    at = np.where(reason >= 0, o.f["utc"] + delay, at)
    return reason, at


def cancellation_table(o: Orders, reason, at, order_id: pa.Array) -> pa.Table:
    sel = np.flatnonzero(reason >= 0)
    off = utc_offset_min(o.f["tz"][sel], at[sel])
    return pa.table(
        {
            "order_id": order_id.take(pa.array(sel)),
            "cancelled_at": iso_local(at[sel], off),
            "reason": pick(CANCEL_REASONS, reason[sel]),
            "_t": at[sel],
        }
    )


def labels(rng: np.random.Generator, o: Orders, cancelled: np.ndarray) -> dict:
    """Chargebacks and confirmed-fraud flags (truth keeps even those after the world's end)."""
    n = o.n
    fraud = o.f["fraud"] > 0
    shipped = ~cancelled
    labelled = fraud & shipped & (rng.random(n) < 0.85)
    confirm = labelled & (rng.random(n) < 0.45)
    friendly = ~fraud & shipped & (rng.random(n) < 0.0025)
    cb = labelled | friendly
    t_cb = o.f["utc"] + (rng.uniform(14, 60, n) * DAY).astype(np.int64)
    t_cf = o.f["utc"] + (rng.uniform(3, 13, n) * DAY).astype(np.int64)
    rows_o = np.concatenate([np.flatnonzero(confirm), np.flatnonzero(cb)])
    kind = np.concatenate([np.ones(int(confirm.sum()), int), np.zeros(int(cb.sum()), int)])
    t = np.concatenate([t_cf[confirm], t_cb[cb]])
    code = np.where(
        kind == 1,
        4,
        np.where(fraud[rows_o], rng.choice(2, len(rows_o)), 2 + rng.choice(2, len(rows_o))),
    )
    first = np.full(n, -1, dtype=np.int64)
    order = np.argsort(t, kind="stable")
    first_seen = np.full(n, np.iinfo(np.int64).max)
    np.minimum.at(first_seen, rows_o, t)
    first[first_seen < np.iinfo(np.int64).max] = first_seen[first_seen < np.iinfo(np.int64).max]
    return {
        "order": rows_o[order],
        "kind": kind[order],
        "t": t[order],
        "code": code[order],
        "friendly": friendly,
        "first": first,
    }


def label_table(o: Orders, lab: dict, order_id: pa.Array, t_end: int) -> pa.Table:
    keep = lab["t"] < t_end
    rows = lab["order"][keep]
    t = lab["t"][keep]
    n = len(rows)
    return pa.table(
        {
            "label_id": cat("LBL-", num_str(np.arange(1, n + 1), 7)),
            "order_id": order_id.take(pa.array(rows)),
            "label_type": pick(["chargeback", "confirmed_fraud"], lab["kind"][keep]),
            "reported_at": iso_local(t, np.zeros(n, np.int32)),  # the PSP reports in UTC
            "amount": o.f["total"][rows] / 100,
            "reason_code": pick(
                ["10.4", "10.5", "13.1", "13.3", "internal_review"], lab["code"][keep]
            ),
            "_t": t,
        }
    )


def reviews(
    rng: np.random.Generator, world: World, o: Orders, s: Shipments, order_id: pa.Array, t_end: int
) -> pa.Table:
    """Ratings and contacts per order, driven by how the delivery went."""
    n = o.n
    has = np.zeros(n, bool)
    has[s.order] = True
    delivered = np.full(n, -1, np.int64)
    np.maximum.at(delivered, s.order, s.delivered)
    lost = np.zeros(n, bool)
    np.logical_or.at(lost, s.order, s.lost)
    late_days = np.zeros(n, np.int64)
    np.maximum.at(late_days, s.order, np.where(s.lost, 0, s.late_days))
    damaged = np.zeros(n, bool)
    np.logical_or.at(damaged, s.order, s.damaged & ~s.lost)
    wrong = np.zeros(n, bool)
    np.logical_or.at(wrong, s.order, s.wrong_item)
    promised_end = world.t0 + (o.f["promised"] - world.t0 // DAY + 1) * DAY
    done = has & ~lost & (delivered > 0)
    parts = []
    # survey reviews after delivery
    rev = done & (rng.random(n) < 0.10 + 0.15 * (damaged | wrong) + 0.05 * (late_days > 0))
    score = (
        4.5 + rng.normal(0, 0.75, n) - 0.6 * np.minimum(late_days, 4) - 2.6 * damaged - 2.4 * wrong
    )
    rating = np.clip(np.round(score), 1, 5).astype(np.int64)
    t_rev = delivered + rng.lognormal(np.log(30 * HOUR), 0.8, n).astype(np.int64)
    parts.append((rev, t_rev, 0, 0, rating))
    # "where is my order": late or lost orders after their promised day has passed
    wismo = has & ((late_days > 0) | lost) & (rng.random(n) < np.where(lost, 0.7, 0.3))
    parts.append((wismo, promised_end + rng.integers(2 * HOUR, 30 * HOUR, n), 1, 4, None))
    comp = done & (late_days >= 2) & (rng.random(n) < 0.15)
    parts.append((comp, delivered + rng.integers(HOUR, 2 * DAY, n), 1, 1, None))
    dmg = done & damaged & (rng.random(n) < 0.6)
    parts.append((dmg, delivered + rng.integers(HOUR, 2 * DAY, n), 1, 2, None))
    wi = done & wrong & (rng.random(n) < 0.7)
    parts.append((wi, delivered + rng.integers(HOUR, 3 * DAY, n), 1, 3, None))
    other = rng.random(n) < 0.004
    parts.append((other, o.f["utc"] + rng.integers(10 * MINUTE, DAY, n), 1, 5, None))
    return _review_rows(rng, world, o, parts, order_id, t_end)


def _review_rows(rng, world: World, o: Orders, parts, order_id: pa.Array, t_end: int) -> pa.Table:
    rows = np.concatenate([np.flatnonzero(m) for m, *_ in parts])
    t = np.concatenate([tt[m] for m, tt, *_ in parts])
    is_contact = np.concatenate([np.full(int(m.sum()), c) for m, _, c, _, _ in parts])
    reason = np.concatenate([np.full(int(m.sum()), r) for m, _, _, r, _ in parts])
    rating = np.concatenate(
        [rt[m] if rt is not None else np.zeros(int(m.sum()), np.int64) for m, _, _, _, rt in parts]
    )
    keep = t < t_end
    rows, t, is_contact, reason, rating = (x[keep] for x in (rows, t, is_contact, reason, rating))
    order = np.lexsort((rows, t))
    rows, t, is_contact, reason, rating = (x[order] for x in (rows, t, is_contact, reason, rating))
    n = len(rows)
    cust = o.f["cust"][rows]
    lang = world.cust_lang[cust]
    channel = np.where(is_contact == 0, 0, 1 + rng.choice(3, n, p=[0.45, 0.35, 0.2]))
    key = np.select(
        [is_contact == 0, reason == 4, reason == 1, reason == 2, reason == 3],
        [np.where(rating >= 4, 0, np.where(rating <= 2, 1, 0)), 4, 1, 2, 3],
        5,
    )
    key = np.where((is_contact == 0) & (rating <= 2), 1, key)
    comment = _comments(rng, key, lang)
    off = utc_offset_min(geo.country_tz_rule_index(geo.CITY_COUNTRY[world.cust_city[cust]]), t)
    from .world import customer_ids

    return pa.table(
        {
            "review_id": cat("REV-", num_str(np.arange(1, n + 1), 7)),
            "order_id": order_id.take(pa.array(rows)),
            "customer_id": customer_ids(cust),
            "created_at": iso_local(t, off),
            "contact_channel": pick(["survey", "email", "chat", "phone"], channel),
            "contact_reason": pick(
                ["review", "late_delivery", "damaged", "wrong_item", "where_is_my_order", "other"],
                reason,
            ),
            "rating": pa.array(np.where(is_contact == 0, rating, 0), mask=is_contact == 1),
            "comment": comment,
            "_t": t,
        }
    )


def _comments(rng: np.random.Generator, key: np.ndarray, lang: np.ndarray) -> pa.Array:
    """Short texts in the customer's language; a few continue on a second line."""
    groups = ["good", "late", "damaged", "wrong_item", "wismo", "other"]
    texts, offsets = [], {}
    for g in groups:
        for la in LANGUAGES:
            offsets[(g, la)] = (len(texts), len(COMMENTS[g][la]))
            texts.extend(COMMENTS[g][la])
    n = len(key)
    li = np.searchsorted(np.array(sorted(LANGUAGES)), lang)
    lang_sorted = sorted(LANGUAGES)
    start = np.zeros(n, np.int64)
    count = np.ones(n, np.int64)
    for gi, g in enumerate(groups):
        for la_i, la in enumerate(lang_sorted):
            sel = (key == gi) & (li == la_i)
            start[sel], count[sel] = offsets[(g, la)]
    idx = start + (rng.random(n) * count).astype(np.int64)
    base = np.array(texts, dtype=object)[idx]
    follow = np.array([COMMENTS["followup"][la][0] for la in lang_sorted], dtype=object)[li]
    multi = rng.random(n) < 0.05
    base[multi] = base[multi] + "\n" + follow[multi]
    return pa.array(base, type=pa.string())
