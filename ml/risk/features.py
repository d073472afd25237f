"""Point-in-time risk features, computed in SQL on DuckDB, and their catalogue.

Every feature of an order is computed from what was known at the order's timestamp: the
order's own checkout facts, the entity's orders up to and including that moment (window frames
end at the current row; orders placed at the very same instant count as known), and fraud
verdicts whose ``fraud_known_at`` is not later than it. Nothing looks forward, which
``tests/test_risk_features.py`` proves by changing the data after a cut-off and comparing.

The input is a relation of *order facts* with the columns of :data:`FACT_COLUMNS` (in the lake:
``intermediate.int_order_risk_facts``; for the real fraud data set: the adapter in
:mod:`ml.risk.fraud_ecommerce`) and optionally a relation of verdicts
(``order_id, is_fraud, fraud_known_at``). The feature set is generated from one specification
(entities x windows x aggregates), so the SQL and the catalogue cannot disagree.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import duckdb
import numpy as np
import pandas as pd

from ml.risk import windows

#: entity -> its key column in the facts relation
ENTITIES: dict[str, str] = {
    "customer": "customer_key",
    "device": "device_key",
    "ip": "ip_key",
    "ip_network": "ip_network_key",
    "card": "card_key",
    "ship_address": "ship_address_key",
}
ENTITY_KEYS = dict(ENTITIES)
#: entities whose distinct counts are "counterparts" (accounts per device, cards per address...)
COUNTERPARTS = ("customer", "device", "ip", "card", "ship_address")
PLURAL = {
    "customer": "customers",
    "device": "devices",
    "ip": "ips",
    "card": "cards",
    "ship_address": "ship_addresses",
}
#: window name -> DuckDB interval; the longest is also the history the features look back on
WINDOWS: dict[str, str] = {
    "1h": "1 hour",
    "24h": "24 hours",
    "7d": "7 days",
    "30d": "30 days",
    "90d": "90 days",
}
#: distinct counterparts are counted over these windows only (the costliest aggregate; within an
#: hour there is rarely more than one, and 90 days adds little over 30)
DISTINCT_WINDOWS = ("24h", "7d", "30d")
LOOKBACK = "90 days"
LOOKBACK_DAYS = 90

#: the columns a facts relation must provide (nullable where a source has no such data)
FACT_COLUMNS = (
    "order_id", "ordered_at", *ENTITIES.values(),
    "channel", "payment_method", "promise_type", "acquisition_source", "browser_family",
    "device_class", "has_promo_code", "billing_differs_from_shipping", "order_total",
    "shipping_fee", "ip_country_code", "shipping_country_code", "billing_country_code",
    "home_country_code", "ip_lat", "ip_lon", "shipping_lat", "shipping_lon", "home_lat",
    "home_lon", "signed_up_at", "customer_tier", "customer_age_years", "line_count",
    "unit_count", "max_unit_price", "category_count", "high_risk_value_share",
    "medium_risk_value_share", "discount_share", "local_hour", "local_dow",
)  # fmt: skip

#: categorical features (LightGBM categories; their vocabulary is fixed at training time)
CATEGORICAL = (
    "channel", "payment_method", "promise_type", "acquisition_source", "browser_family",
    "device_class", "customer_tier", "ip_country_code", "shipping_country_code",
)  # fmt: skip


@dataclass(frozen=True)
class Feature:
    name: str
    entity: str  # "order" for the order's own facts
    window: str  # "" when the feature has no time window
    family: str
    definition: str  # what a reviewer reads in the catalogue
    sql: str  # the expression in the feature query
    categorical: bool = False


def _haversine(lat1: str, lon1: str, lat2: str, lon2: str) -> str:
    return (
        f"2 * 6371 * asin(sqrt(pow(sin(radians({lat2} - {lat1}) / 2), 2) + cos(radians({lat1})) "
        f"* cos(radians({lat2})) * pow(sin(radians({lon2} - {lon1}) / 2), 2)))"
    )


def _order_features() -> list[Feature]:
    def f(name: str, family: str, definition: str, sql: str, categorical: bool = False):
        return Feature(name, "order", "", family, definition, sql, categorical)

    ip_ship = _haversine("f.ip_lat", "f.ip_lon", "f.shipping_lat", "f.shipping_lon")
    ip_home = _haversine("f.ip_lat", "f.ip_lon", "f.home_lat", "f.home_lon")
    ship_home = _haversine("f.shipping_lat", "f.shipping_lon", "f.home_lat", "f.home_lon")
    age_h = "date_diff('second', f.signed_up_at, f.ordered_at) / 3600.0"
    feats = [
        f("order_total", "amount", "Order value incl. shipping (EUR).", "f.order_total"),
        f("log_order_total", "amount", "ln(1 + order value).", "ln(1 + f.order_total)"),
        f("shipping_fee", "amount", "Shipping fee charged (EUR).", "f.shipping_fee"),
        f(
            "shipping_fee_share",
            "amount",
            "Shipping fee / order value.",
            "f.shipping_fee / nullif(f.order_total, 0)",
        ),
        f("line_count", "basket", "Order lines.", "f.line_count"),
        f("unit_count", "basket", "Units ordered.", "f.unit_count"),
        f("max_unit_price", "basket", "Highest unit price in the basket.", "f.max_unit_price"),
        f("category_count", "basket", "Distinct product categories.", "f.category_count"),
        f(
            "high_risk_value_share",
            "sku_risk_mix",
            "Share of the basket's value in high-risk (resellable) SKUs.",
            "f.high_risk_value_share",
        ),
        f(
            "medium_risk_value_share",
            "sku_risk_mix",
            "Share of the basket's value in medium-risk SKUs.",
            "f.medium_risk_value_share",
        ),
        f("discount_share", "basket", "Discount / gross basket value.", "f.discount_share"),
        f("has_promo_code", "checkout", "A promo code was used.", "f.has_promo_code::int"),
        f(
            "billing_differs_from_shipping",
            "geo",
            "Billing and shipping address differ.",
            "f.billing_differs_from_shipping::int",
        ),
        f(
            "ip_country_differs_shipping",
            "geo",
            "The IP geolocates to another country than the shipping address.",
            "(f.ip_country_code is distinct from f.shipping_country_code)::int",
        ),
        f(
            "ip_country_differs_billing",
            "geo",
            "The IP geolocates to another country than the billing address.",
            "(f.ip_country_code is distinct from f.billing_country_code)::int",
        ),
        f(
            "ip_country_differs_home",
            "geo",
            "The IP geolocates to another country than the customer's home.",
            "(f.ip_country_code is distinct from f.home_country_code)::int",
        ),
        f(
            "shipping_country_differs_home",
            "geo",
            "Shipping to another country than the customer's home.",
            "(f.shipping_country_code is distinct from f.home_country_code)::int",
        ),
        f(
            "ip_unlocated",
            "geo",
            "The IP is in no known range (no country).",
            "(f.ip_country_code is null)::int",
        ),
        f("ip_to_shipping_km", "geo", "Distance IP location to shipping address (km).", ip_ship),
        f("ip_to_home_km", "geo", "Distance IP location to the customer's home (km).", ip_home),
        f(
            "shipping_to_home_km",
            "geo",
            "Distance shipping address to the customer's home (km).",
            ship_home,
        ),
        f("account_age_hours", "account", "Hours from signup to this order.", age_h),
        f(
            "account_age_log_hours",
            "account",
            "ln(1 + hours from signup to this order).",
            f"ln(1 + greatest({age_h}, 0))",
        ),
        f(
            "signed_up_within_1h",
            "account",
            "The account was created less than an hour before the order.",
            f"({age_h} < 1)::int",
        ),
        f(
            "customer_age_years",
            "account",
            "Customer's age, where the source has it.",
            "f.customer_age_years",
        ),
        f("local_hour", "time", "Hour of day on the shopper's clock.", "f.local_hour"),
        f(
            "local_dow",
            "time",
            "ISO day of week (1 = Monday) on the shopper's clock.",
            "f.local_dow",
        ),
        f(
            "is_night",
            "time",
            "Ordered between 00:00 and 05:59 local time.",
            "(f.local_hour < 6)::int",
        ),
        f("is_weekend", "time", "Ordered on a Saturday or Sunday.", "(f.local_dow >= 6)::int"),
        f(
            "hour_sin",
            "time",
            "Hour of day on a circle (sine), so 23:00 and 01:00 are close.",
            "sin(2 * pi() * f.local_hour / 24)",
        ),
        f(
            "hour_cos",
            "time",
            "Hour of day on a circle (cosine).",
            "cos(2 * pi() * f.local_hour / 24)",
        ),
    ]
    for col in CATEGORICAL:
        feats.append(
            f(
                col,
                "checkout",
                f"{col.replace('_', ' ').capitalize()} (category).",
                f"f.{col}",
                True,
            )
        )
    return feats


def _in(win: str) -> str:
    """Pair rows whose order falls in the window ending at the scored order (inclusive)."""
    if win == "90d":  # the join itself is bounded by the 90-day look-back
        return "true"
    return f"p.ordered_at > o.ordered_at - interval {WINDOWS[win]}"


PRIOR = "p.order_id <> o.order_id"  # the entity's other orders (earlier or at the same instant)


def _entity_features() -> list[Feature]:
    """Per entity and window: aggregates over the entity's orders in the window.

    ``sql`` is an aggregate over the pairs (o = the scored order, p = an order of the same
    entity placed in the 90 days up to and including o's timestamp).
    """
    feats: list[Feature] = []
    for entity in ENTITIES:
        label = entity.replace("_", " ")

        def add(
            name: str, window: str, family: str, definition: str, sql: str, entity: str = entity
        ) -> None:
            feats.append(Feature(f"{entity}__{name}", entity, window, family, definition, sql))

        for win in WINDOWS:
            period = {"1h": "hour", "24h": "24 hours"}.get(win, win.replace("d", " days"))
            cond = _in(win)
            add(
                f"orders__{win}",
                win,
                "velocity",
                f"Orders by this {label} in the last {period} (incl. this one).",
                f"count(*) filter (where {cond})",
            )
            add(
                f"amount_sum__{win}",
                win,
                "amount",
                f"Value ordered by this {label} in the last {period}.",
                f"sum(p.order_total) filter (where {cond})",
            )
            add(
                f"amount_max__{win}",
                win,
                "amount",
                f"Largest order of this {label} in the last {period}.",
                f"max(p.order_total) filter (where {cond})",
            )
            add(
                f"amount_mean__{win}",
                win,
                "amount",
                f"Mean order value of this {label} in the last {period}.",
                f"avg(p.order_total) filter (where {cond})",
            )
            for other in COUNTERPARTS:
                if other == entity or win not in DISTINCT_WINDOWS:
                    continue
                add(
                    f"distinct_{PLURAL[other]}__{win}",
                    win,
                    "linkage",
                    f"Distinct {PLURAL[other].replace('_', ' ')} seen with this {label} in the last {period}.",
                    f"count(distinct p.{ENTITY_KEYS[other]}) filter (where {cond})",
                )
            add(
                f"foreign_ip_orders__{win}",
                win,
                "geo",
                f"Orders of this {label} in the last {period} whose IP is in another country than "
                "the shipping address.",
                f"count(*) filter (where {cond} "
                "and p.ip_country_code is distinct from p.shipping_country_code)",
            )
            add(
                f"night_orders__{win}",
                win,
                "time",
                f"Orders of this {label} in the last {period} placed 00:00-05:59 local time.",
                f"count(*) filter (where {cond} and p.local_hour < 6)",
            )
        add(
            "minutes_since_previous",
            "90d",
            "velocity",
            f"Minutes since this {label}'s previous order (within 90 days).",
            f"date_diff('second', max(p.ordered_at) filter (where {PRIOR}), o.ordered_at) / 60.0",
        )
        add(
            "hours_since_first_seen",
            "90d",
            "history",
            f"Hours since this {label} was first seen (within 90 days; 0 = new).",
            "date_diff('second', min(p.ordered_at), o.ordered_at) / 3600.0",
        )
        add(
            "amount_ratio__90d",
            "90d",
            "deviation",
            f"Order value / the mean of this {label}'s other orders in 90 days.",
            f"o.order_total / nullif(avg(p.order_total) filter (where {PRIOR}), 0)",
        )
        add(
            "amount_zscore__90d",
            "90d",
            "deviation",
            f"Order value in standard deviations from this {label}'s other orders in 90 days.",
            f"(o.order_total - avg(p.order_total) filter (where {PRIOR})) "
            f"/ nullif(stddev_samp(p.order_total) filter (where {PRIOR}), 0)",
        )
        add(
            "known_fraud__90d",
            "90d",
            "matured_fraud",
            f"Fraud verdicts known at order time (reported in the last 90 days) on this {label}'s orders.",
            "coalesce(any_value(lf.known_fraud), 0)",
        )
        add(
            "known_fraud_rate__90d",
            "90d",
            "matured_fraud",
            f"Known fraud verdicts / orders of this {label} in the last 90 days.",
            "coalesce(any_value(lf.known_fraud), 0) / count(*)",
        )
    return feats


@functools.cache
def catalogue() -> tuple[Feature, ...]:
    """Every feature, in the model's column order."""
    return tuple(_order_features() + _entity_features())


@functools.cache
def _by_name() -> dict[str, Feature]:
    return {f.name: f for f in catalogue()}


def feature_names() -> list[str]:
    return [f.name for f in catalogue()]  # a new list: callers may change it


def catalogue_frame() -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "name": f.name,
                "entity": f.entity,
                "window": f.window,
                "family": f.family,
                "type": "categorical" if f.categorical else "numeric",
                "definition": f.definition,
            }
            for f in catalogue()
        ]
    )


def catalogue_markdown() -> str:
    """The catalogue as a Markdown page (docs/risk_features.md is this, generated)."""
    frame = catalogue_frame()
    lines = [
        "# Risk feature catalogue",
        "",
        "Generated by `ordertower risk catalogue` from `ml/risk/features.py`; do not edit by hand.",
        f"{len(frame)} features: {', '.join(f'{n} {k}' for k, n in frame['family'].value_counts().items())}.",
        "Every feature is point-in-time: computed from what was known at the order's timestamp.",
        "",
        "| name | entity | window | type | definition |",
        "|---|---|---|---|---|",
    ]
    for row in frame.itertuples():
        lines.append(
            f"| `{row.name}` | {row.entity} | {row.window} | {row.type} | {row.definition} |"
        )
    return "\n".join(lines) + "\n"


def _label_cte(entity: str, labels: str | None) -> str:
    """Fraud verdicts on the entity's orders known (in the look-back) at each order's time."""
    key = ENTITIES[entity]
    if labels is None:
        return f"lf_{entity} as (select null::varchar as order_id, 0 as known_fraud where false)"
    return f"""lf_{entity} as (
    select o.order_id, count(*) as known_fraud
    from hist o
    join (
        select v.{key} as k, l.fraud_known_at as known_at
        from {labels} l join all_facts v using (order_id)
        where l.is_fraud and v.{key} is not null
            and l.fraud_known_at >= $lookback_from and l.fraud_known_at < $to_ts
    ) ev on ev.k = o.{key}
        and ev.known_at <= o.ordered_at and ev.known_at > o.ordered_at - interval {LOOKBACK}
    where o.ordered_at >= $from_ts
    group by o.order_id
)"""


def _cast(f: Feature) -> str:
    return f"cast({f.sql} as {'varchar' if f.categorical else 'float'}) as {f.name}"


#: entity features computed in SQL by :func:`feature_sql` (the others come from
#: :mod:`ml.risk.windows`): those over the other orders without this one, and fraud verdicts
IN_SQL = ("amount_ratio__90d", "amount_zscore__90d", "known_fraud__90d")


def _in_sql(f: Feature) -> bool:
    return f.entity == "order" or f.name.split("__", 1)[1] in IN_SQL


def _others_window(key: str) -> str:
    """The entity's other orders of the 90 days up to this one (peers at its instant count)."""
    start = f"(interval {LOOKBACK} - interval 1 microsecond) preceding"
    return (
        f"(partition by {key} order by ordered_at range between {start} and current row "
        "exclude current row)"
    )


def _entity_cte(entity: str, key: str, pairs: bool) -> str:
    if pairs:  # the reference definition: every pair of the entity's orders within 90 days
        select = ",\n        ".join(_cast(f) for f in catalogue() if f.entity == entity)
        return f"""e_{entity} as (
    select o.order_id,
        {select}
    from hist o
    join hist p on p.{key} = o.{key}
        and p.ordered_at <= o.ordered_at and p.ordered_at > o.ordered_at - interval {LOOKBACK}
    left join lf_{entity} lf on lf.order_id = o.order_id
    where o.ordered_at >= $from_ts
    group by o.order_id, o.ordered_at, o.order_total
)"""
    # the same three features as window frames over the entity's orders (same definitions)
    return f"""e_{entity} as (
    select o.order_id,
        cast(o.order_total / nullif(o.others_mean, 0) as float) as {entity}__amount_ratio__90d,
        cast((o.order_total - o.others_mean) / nullif(o.others_sd, 0) as float)
            as {entity}__amount_zscore__90d,
        cast(coalesce(lf.known_fraud, 0) as float) as {entity}__known_fraud__90d
    from (
        select order_id, ordered_at, order_total,
            avg(order_total) over w as others_mean, stddev_samp(order_total) over w as others_sd
        from hist
        where {key} in (select {key} from hist where ordered_at >= $from_ts)
        window w as {_others_window(key)}
    ) o
    left join lf_{entity} lf on lf.order_id = o.order_id
    where o.ordered_at >= $from_ts
)"""


def feature_sql(facts: str, labels: str | None, pairs: bool = False) -> str:
    """The feature query: parameters ``$from_ts``, ``$to_ts``, ``$lookback_from``.

    ``pairs``: the reference definition of every feature. Per entity, each scored order ``o``
    is joined to the entity's orders ``p`` of the 90 days up to its own timestamp, and every
    window's aggregate is a filtered aggregate over those pairs. The pairs grow with the
    square of a busy entity's orders, so :func:`build_features` computes the windows in
    :mod:`ml.risk.windows` and asks this query only for the features of :data:`IN_SQL`.
    """
    feats = [f for f in catalogue() if pairs or _in_sql(f)]
    order_select = ",\n    ".join(_cast(f) for f in feats if f.entity == "order")
    ctes = []
    for entity, key in ENTITIES.items():
        ctes.append(_label_cte(entity, labels))
        ctes.append(_entity_cte(entity, key, pairs))
    entity_sql = ",\n".join(ctes)
    joins = "\n".join(f"left join e_{e} using (order_id)" for e in ENTITIES)
    entity_cols = ",\n    ".join(f"e_{f.entity}.{f.name}" for f in feats if f.entity != "order")
    return f"""
with
all_facts as (select * from {facts}),
hist as materialized (
    select * from all_facts where ordered_at >= $lookback_from and ordered_at < $to_ts
),
{entity_sql},
features as (
select
    f.order_id,
    f.ordered_at,
    {order_select},
    {entity_cols}
from hist f
{joins}
where f.ordered_at >= $from_ts
)
select * from features order by ordered_at, order_id
"""


def build_features(
    con: duckdb.DuckDBPyConnection,
    facts: str,
    labels: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    pairs: bool = False,
) -> pd.DataFrame:
    """Features of the orders placed in ``[start, end)`` (all orders when both are None).

    ``facts`` and ``labels`` are relation names (or parenthesised queries) on ``con``. The
    history before ``start`` is read back 90 days, the longest window, so a day scored alone
    gets the same features as in a full rebuild. ``pairs``: by the reference query alone
    (quadratic in a busy entity's orders; the tests compare the two).
    """
    bounds = con.execute(f"select min(ordered_at), max(ordered_at) from {facts}").fetchone()
    if bounds is None or bounds[0] is None:
        return _empty_frame()
    lo, hi = bounds
    start = start or lo
    end = end or (hi + pd.Timedelta(seconds=1))
    params = {
        "from_ts": start,
        "to_ts": end,
        "lookback_from": pd.Timestamp(start) - pd.Timedelta(days=LOOKBACK_DAYS),
    }
    frame = con.execute(feature_sql(facts, labels, pairs), params).df()
    if pairs:
        return frame
    history = con.execute(_history_sql(facts), params).df()
    scored = pd.Index(history["order_id"]).get_indexer(frame["order_id"])
    computed = pd.DataFrame(_window_features(history, frame, scored), index=frame.index)
    frame = pd.concat([frame, computed], axis=1)
    return frame[["order_id", "ordered_at", *feature_names()]]


def _history_sql(facts: str) -> str:
    """What :func:`_window_features` reads: the scored orders, and the orders of the look-back
    that share an entity with one of them (no other order is in any scored order's window)."""
    keys = ", ".join(ENTITIES.values())
    shared = " or ".join(f"{k} in (select {k} from scored)" for k in ENTITIES.values())
    return f"""
with
hist as materialized (
    select order_id, ordered_at, epoch_us(ordered_at) as t_us, order_total,
        (ip_country_code is distinct from shipping_country_code) as foreign_ip,
        coalesce(local_hour < 6, false) as night, {keys}
    from {facts} where ordered_at >= $lookback_from and ordered_at < $to_ts
),
scored as materialized (select {keys} from hist where ordered_at >= $from_ts)
select order_id, t_us, order_total, foreign_ip, night, {keys}
from hist
where ordered_at >= $from_ts or {shared}
"""


def _window_features(
    history: pd.DataFrame, frame: pd.DataFrame, scored: np.ndarray
) -> dict[str, np.ndarray]:
    """The entity features not in :data:`IN_SQL`, for ``frame``'s orders (at ``scored`` in
    ``history``), as float32 like the query's ``float`` columns.

    An entity's timeline holds only the keys of scored orders: the other orders of ``history``
    are there for the entities they share with a scored order (a hub IP network's orders count
    for the network, not for each of their devices' timelines)."""
    t_us = history["t_us"].to_numpy(np.int64)
    amount = history["order_total"].to_numpy(np.float64, na_value=np.nan)
    has_amount = ~np.isnan(amount)
    flags = {c: history[c].to_numpy(bool) for c in ("foreign_ip", "night")}
    times = np.unique(t_us)
    spans = {w: int(pd.Timedelta(iv).value // 1000) for w, iv in WINDOWS.items()}
    key_codes = {e: windows.codes(history[k]) for e, k in ENTITIES.items()}
    out: dict[str, np.ndarray] = {}
    for entity in ENTITIES:
        codes = key_codes[entity]
        timeline_codes = np.where(np.isin(codes, codes[scored]), codes, -1)
        tl = windows.Timeline.build(timeline_codes, t_us, times)
        distinct = {
            other: windows.distinct_in_windows(
                tl, key_codes[other], {w: spans[w] for w in DISTINCT_WINDOWS}
            )
            for other in COUNTERPARTS
            if other != entity
        }
        values: dict[str, np.ndarray] = {}
        amt = np.where(has_amount, amount, 0.0)[tl.rows]
        counted = has_amount[tl.rows].astype(np.int64)
        sums, counts = windows.prefix(amt), windows.prefix(counted)
        tops = windows.RangeMax(np.where(has_amount, amount, -np.inf)[tl.rows], len(tl.rows))
        flag_sums = {c: windows.prefix(v[tl.rows].astype(np.int64)) for c, v in flags.items()}
        for win, span in spans.items():
            first, end = tl.window(span)
            n_amount = counts[end] - counts[first]
            total = np.where(n_amount > 0, sums[end] - sums[first], np.nan)
            values[f"orders__{win}"] = end - first
            values[f"amount_sum__{win}"] = total
            top = tops.query(first, end)
            values[f"amount_max__{win}"] = np.where(np.isinf(top), np.nan, top)
            values[f"amount_mean__{win}"] = total / np.where(n_amount > 0, n_amount, np.nan)
            values[f"foreign_ip_orders__{win}"] = (
                flag_sums["foreign_ip"][end] - flag_sums["foreign_ip"][first]
            )
            values[f"night_orders__{win}"] = flag_sums["night"][end] - flag_sums["night"][first]
            for other, counts_by_window in distinct.items():
                if win in counts_by_window:
                    values[f"distinct_{PLURAL[other]}__{win}"] = counts_by_window[win]
            if win == "90d":
                secs = windows.whole_seconds(tl.t)
                values["hours_since_first_seen"] = (secs - secs[first]) / 3600.0
                peer_first, peer_end = tl.peers()
                before = np.maximum(peer_first - 1, 0)
                previous_ok = (peer_first > first) & (tl.seg[before] == tl.seg)
                values["minutes_since_previous"] = np.where(
                    peer_end - peer_first > 1,
                    0.0,
                    np.where(previous_ok, (secs - secs[before]) / 60.0, np.nan),
                )
        # back to the scored orders (absent from the entity's timeline: no key, null features)
        position = np.full(len(history), -1)
        position[tl.rows] = np.arange(len(tl.rows))
        at = position[scored]
        for name, vals in values.items():
            col = np.full(len(scored), np.nan)
            col[at >= 0] = np.asarray(vals, np.float64)[at[at >= 0]]
            out[f"{entity}__{name}"] = col.astype(np.float32)
        fraud = frame[f"{entity}__known_fraud__90d"].to_numpy(np.float64, na_value=np.nan)
        out[f"{entity}__known_fraud_rate__90d"] = (
            fraud / out[f"{entity}__orders__90d"].astype(np.float64)
        ).astype(np.float32)
    return out


def _empty_frame() -> pd.DataFrame:
    # the keys keep their types (text, UTC time) so an empty result still merges on order_id
    return pd.DataFrame(
        {
            "order_id": pd.Series(dtype="object"),
            "ordered_at": pd.Series(dtype="datetime64[us, UTC]"),
            **{c: pd.Series(dtype="float32") for c in feature_names()},
        }
    )


def model_matrix(
    frame: pd.DataFrame, categories: dict[str, list[str]] | None = None
) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """The LightGBM input: numeric features as float32, categoricals with a fixed vocabulary.

    At training time ``categories`` is None and the vocabulary is taken from ``frame``; scoring
    passes the training vocabulary so that codes mean the same (unseen values become missing).
    """
    names = feature_names()
    cat_names = [f.name for f in catalogue() if f.categorical]
    x = frame[names].copy()
    learned: dict[str, list[str]] = {}
    for col in cat_names:
        values = x[col].astype("string")
        vocab = (
            categories[col] if categories is not None else sorted(values.dropna().unique().tolist())
        )
        learned[col] = list(vocab)
        x[col] = pd.Categorical(values, categories=vocab)
    for col in names:
        if col not in learned:
            x[col] = pd.to_numeric(x[col], errors="coerce").astype("float32")
    return x, learned


def describe(names: Iterable[str]) -> dict[str, Feature]:
    by_name = _by_name()
    return {n: by_name[n] for n in names}
