"""Point-in-time examples and features of the ETA model, computed in DuckDB SQL.

A *prediction point* is a shipment and a moment ``as_of``. Its features use only what was known
at that moment: the shipment and its legs as the TMS planned them when the shipment was created
(lane, modes, carriers, distances, planned times, promised date), and the carrier events that
had happened **and had been received** by then (an event's ``partition_key`` is the UTC day its
file arrived: one that happened before ``as_of`` but arrived on a later day was not known yet).
``tests/test_eta.py`` proves it by changing everything after a cut-off and comparing.

One query serves training and the live scorer (:func:`feature_sql`): training asks for every
point of the history (:func:`training_points`: at dispatch, at every scan, and every few hours
in between), the live scorer for a few shipments at ``now`` (:mod:`ml.eta.live`). The inputs are
the dbt staging views, which always show the latest events (batch and streamed), so both read
the same columns; tests point the query at other relations with :class:`Sources`.

The features come from one specification (:data:`FEATURES`), so the SQL, the model's columns
and the catalogue in ``docs/eta.md`` cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb
import pandas as pd

from ml.eta.config import EtaPolicy
from ml.frames import fetch_frame


@dataclass(frozen=True)
class Sources:
    """The relations the features read (the staging views of the lake by default)."""

    shipments: str = "staging.stg_tms__shipments"
    legs: str = "staging.stg_tms__shipment_legs"
    events: str = "staging.stg_carriers__carrier_events"


STAGING = Sources()


@dataclass(frozen=True)
class Feature:
    name: str
    family: str
    definition: str  # what the catalogue says
    sql: str  # the expression over the ``base`` relation of :func:`feature_sql`
    categorical: bool = False


def _h(a: str, b: str) -> str:
    """Hours from ``b`` to ``a``."""
    return f"epoch({a} - {b}) / 3600.0"


FEATURES: tuple[Feature, ...] = (
    # -- the lane and the plan (known when the shipment is created)
    Feature("service_level", "lane", "Service level promised (next_day, standard, green).",
            "b.service_level", True),
    Feature("warehouse_id", "lane", "Shipping warehouse.", "b.warehouse_id", True),
    Feature("origin_country", "lane", "Country the first leg leaves from.", "b.origin_country",
            True),
    Feature("destination_country", "lane", "Country the last leg delivers to.",
            "b.destination_country", True),
    Feature("route_modes", "lane", "Modes of the legs in order, e.g. road>last_mile.",
            "b.route_modes", True),
    Feature("first_carrier", "lane", "Carrier of the first leg.", "b.first_carrier", True),
    Feature("last_mile_carrier", "lane", "Carrier of the last leg (the delivery).",
            "b.last_carrier", True),
    Feature("leg_count", "lane", "Number of legs.", "b.leg_count"),
    Feature("total_km", "lane", "Planned distance over all legs (km).", "b.total_km"),
    Feature("last_leg_km", "lane", "Distance of the last leg (km).", "b.last_leg_km"),
    Feature("is_cross_border", "lane", "A leg crosses a border.", "b.is_cross_border::int"),
    Feature("weight_kg", "lane", "Shipment weight (kg).", "b.total_weight_kg"),
    Feature("planned_total_hours", "plan",
            "Hours from creation to the planned delivery (the last leg's planned arrival).",
            _h("b.planned_delivery_at", "b.created_at")),
    Feature("planned_remaining_hours", "plan",
            "Hours from now to the planned delivery: the naive ETA (negative when overdue).",
            _h("b.planned_delivery_at", "b.at")),
    Feature("promised_remaining_hours", "plan",
            "Hours from now to the end of the promised delivery day (UTC).",
            _h("(cast(b.promised_delivery_date as timestamp) + interval 1 day) "
               "at time zone 'UTC'", "b.at")),
    Feature("current_leg_planned_remaining_hours", "plan",
            "Hours from now to the planned arrival of the current leg.",
            _h("b.current_leg_planned_arrival_at", "b.at")),
    Feature("next_leg_departure_in_hours", "plan",
            "Hours from now to the planned departure of the leg after the current one.",
            _h("b.next_leg_planned_departure_at", "b.at")),
    Feature("last_leg_departure_in_hours", "plan",
            "Hours from now to the planned departure of the last leg (the van round).",
            _h("b.last_leg_planned_departure_at", "b.at")),
    # -- progress: scans so far
    Feature("scans", "progress", "Carrier scans received so far (all legs, de-duplicated).",
            "coalesce(b.scans, 0)"),
    Feature("last_event_code", "progress", "Canonical code of the latest scan (NONE before the "
            "first).", "coalesce(b.last_event_code, 'NONE')", True),
    Feature("current_leg_no", "progress", "Leg of the latest scan (1 before the first).",
            "b.current_leg_no"),
    Feature("current_leg_mode", "progress", "Mode of the leg of the latest scan.",
            "b.current_leg_mode", True),
    Feature("legs_departed", "progress", "Legs that have departed (van: out for delivery).",
            "coalesce(b.legs_departed, 0)"),
    Feature("legs_arrived", "progress", "Legs that have arrived or been handed over.",
            "coalesce(b.legs_arrived, 0)"),
    Feature("out_for_delivery", "progress", "Times the parcel went out for delivery.",
            "coalesce(b.out_for_delivery_count, 0)"),
    Feature("failed_attempts", "progress", "Failed delivery attempts.",
            "coalesce(b.failed_attempts, 0)"),
    Feature("at_pickup_point", "progress", "The parcel waits at a pickup point.",
            "coalesce(b.pickup_notices, 0)"),
    Feature("exceptions", "progress", "Exception scans (damage, address, delay, ...).",
            "coalesce(b.exceptions, 0)"),
    Feature("delay_reports", "progress", "Scans reporting a delay.",
            "coalesce(b.delay_reports, 0)"),
    Feature("customs_open", "progress", "Held by customs and not released yet.",
            "(coalesce(b.customs_holds, 0) > coalesce(b.customs_clearances, 0))::int"),
    Feature("customs_holds", "progress", "Customs holds so far.", "coalesce(b.customs_holds, 0)"),
    Feature("latest_lateness_hours", "progress",
            "Latest departure or arrival scan against its planned time (hours late).",
            "b.latest_lateness_h"),
    Feature("max_lateness_hours", "progress",
            "Largest lateness of any departure or arrival so far (hours).", "b.max_lateness_h"),
    # -- time: dwell and elapsed
    Feature("hours_since_last_scan", "dwell", "Hours since the latest scan (dwell).",
            _h("b.at", "b.last_scan_at")),
    Feature("previous_scan_gap_hours", "dwell", "Hours between the latest scan and the one "
            "before.", _h("b.last_two_scans[1]", "b.last_two_scans[2]")),
    Feature("elapsed_hours", "dwell", "Hours since the shipment was created (dispatch).",
            _h("b.at", "b.created_at")),
    # -- calendar
    Feature("hour_of_day", "calendar", "Hour of day now (UTC, with minutes as a fraction).",
            "hour(b.at_utc) + minute(b.at_utc) / 60.0"),
    Feature("day_of_week", "calendar", "Day of week now (1 Monday .. 7 Sunday, UTC).",
            "isodow(b.at_utc)"),
    Feature("day_of_month", "calendar", "Day of the month now.", "day(b.at_utc)"),
    Feature("days_to_peak", "calendar", "Days from now to 11 November (Singles' Day peak).",
            "date_diff('day', cast(b.at_utc as date), make_date(year(b.at_utc), 11, 11))"),
    Feature("is_peak_week", "calendar", "Within 7 days of 11 November.",
            "(abs(date_diff('day', cast(b.at_utc as date), make_date(year(b.at_utc), 11, 11)))"
            " <= 7)::int"),
    Feature("planned_delivery_day_of_week", "calendar", "Day of week of the planned delivery.",
            "isodow(b.planned_delivery_at at time zone 'UTC')"),
    Feature("planned_delivery_hour", "calendar", "Hour of the planned delivery (UTC).",
            "hour(b.planned_delivery_at at time zone 'UTC')"),
    Feature("created_hour", "calendar", "Hour the shipment was created (UTC).",
            "hour(b.created_at at time zone 'UTC')"),
)  # fmt: skip

#: what every feature row carries besides the features (``as_of`` is the effective moment)
ID_COLUMNS = (
    "shipment_id", "order_id", "as_of", "created_at", "planned_delivery_at",
    "known_delivered_at", "current_tracking_ref", "last_tracking_ref",
)  # fmt: skip


def feature_names() -> list[str]:
    return [f.name for f in FEATURES]


def categorical_names() -> list[str]:
    return [f.name for f in FEATURES if f.categorical]


def feature_sql(
    points: str,
    passthrough: tuple[str, ...] = (),
    sources: Sources = STAGING,
    respect_receipt: bool = True,
) -> str:
    """Features of the prediction points ``points`` (a query with ``shipment_id``, ``as_of``
    and the ``passthrough`` columns, which lead the result).

    ``as_of`` null means "at the shipment's latest known scan" (or its creation before any):
    every event in ``sources.events`` counts as known. With ``respect_receipt`` an event counts
    only from the UTC day its file arrived (training on the history); the live scorer turns it
    off, since everything in the view has arrived by the time it asks.
    """
    receipt = (
        "and (points.as_of is null or events.received_date <= "
        "cast(points.as_of at time zone 'UTC' as date))"
        if respect_receipt
        else ""
    )
    columns = ",\n    ".join(f"{f.sql} as {f.name}" for f in FEATURES)
    return f"""
with

points as (
    {points}
),

ships as (
    select shipment_id, order_id, warehouse_id, service_level, total_weight_kg, created_at,
        promised_delivery_date
    from {sources.shipments}
    where shipment_id in (select shipment_id from points)
),

legs as (
    select shipment_id, leg_no, carrier_id, tracking_ref, mode, origin_country_code,
        destination_country_code, distance_km, is_cross_border, planned_departure_at,
        planned_arrival_at
    from {sources.legs}
    where shipment_id in (select shipment_id from ships)
),

plan as (
    select
        shipment_id,
        count(*) as leg_count,
        sum(distance_km) as total_km,
        arg_max(distance_km, leg_no) as last_leg_km,
        arg_min(origin_country_code, leg_no) as origin_country,
        arg_max(destination_country_code, leg_no) as destination_country,
        string_agg(mode, '>' order by leg_no) as route_modes,
        arg_min(carrier_id, leg_no) as first_carrier,
        arg_max(carrier_id, leg_no) as last_carrier,
        arg_max(tracking_ref, leg_no) as last_tracking_ref,
        bool_or(is_cross_border) as is_cross_border,
        arg_max(planned_arrival_at, leg_no) as planned_delivery_at,
        arg_max(planned_departure_at, leg_no) as last_leg_planned_departure_at,
        max(leg_no) as last_leg_no
    from legs
    group by shipment_id
),

events as (
    -- actual scans only (a carrier's estimate is not a scan), each event once: the copy that
    -- was received first
    select
        legs.shipment_id,
        legs.leg_no,
        legs.mode as leg_mode,
        e.event_code,
        e.exception_reason,
        e.event_at,
        cast(e.partition_key as date) as received_date,
        (e.event_at, e.event_code, e.event_id) as seq,
        case
            when (e.event_code = 'DEPARTED' and legs.mode <> 'last_mile')
                or (e.event_code = 'OUT_FOR_DELIVERY' and legs.mode = 'last_mile')
                then {_h("e.event_at", "legs.planned_departure_at")}
            when e.event_code = 'ARRIVED' and legs.mode <> 'last_mile'
                then {_h("e.event_at", "legs.planned_arrival_at")}
        end as lateness_h,
        e.event_code = 'DELIVERED' and legs.leg_no = plan.last_leg_no as is_delivery
    from {sources.events} as e
    inner join legs on e.tracking_ref = legs.tracking_ref
    inner join plan on legs.shipment_id = plan.shipment_id
    where e.is_actual
    qualify row_number() over (
        partition by e.carrier_id, e.event_id order by e.partition_key, e.ingested_at
    ) = 1
),

known as (
    select points.shipment_id, points.as_of, events.* exclude (shipment_id)
    from (select distinct shipment_id, as_of from points) as points
    inner join events
        on events.shipment_id = points.shipment_id
        and (points.as_of is null or events.event_at <= points.as_of)
        {receipt}
),

agg as (
    select
        shipment_id,
        as_of,
        count(*) as scans,
        max(event_at) as last_scan_at,
        max(event_at, 2) as last_two_scans,
        arg_max(event_code, seq) as last_event_code,
        arg_max(leg_no, seq) as current_leg_no,
        arg_max(leg_mode, seq) as current_leg_mode,
        count(*) filter (where event_code = 'EXCEPTION') as exceptions,
        count(*) filter (where event_code = 'DELIVERY_FAILED') as failed_attempts,
        count(*) filter (where event_code = 'CUSTOMS_HOLD') as customs_holds,
        count(*) filter (where event_code = 'CUSTOMS_CLEARED') as customs_clearances,
        count(*) filter (where exception_reason = 'DELAY') as delay_reports,
        count(*) filter (where event_code = 'OUT_FOR_DELIVERY') as out_for_delivery_count,
        count(*) filter (where event_code = 'AVAILABLE_FOR_PICKUP') as pickup_notices,
        count(distinct leg_no) filter (where event_code in ('DEPARTED', 'OUT_FOR_DELIVERY'))
            as legs_departed,
        count(distinct leg_no) filter (where event_code in ('ARRIVED', 'DELIVERED'))
            as legs_arrived,
        arg_max(lateness_h, seq) filter (where lateness_h is not null) as latest_lateness_h,
        max(lateness_h) as max_lateness_h,
        min(event_at) filter (where is_delivery) as known_delivered_at
    from known
    group by shipment_id, as_of
),

state as (
    select
        points.*,
        coalesce(points.as_of, greatest(ships.created_at, agg.last_scan_at)) as at,
        ships.* exclude (shipment_id),
        plan.* exclude (shipment_id),
        agg.* exclude (shipment_id, as_of)
    from points
    inner join ships on points.shipment_id = ships.shipment_id
    inner join plan on points.shipment_id = plan.shipment_id
    left join agg
        on points.shipment_id = agg.shipment_id and points.as_of is not distinct from agg.as_of
),

base as (
    select
        state.*,
        state.at at time zone 'UTC' as at_utc,
        current_leg.tracking_ref as current_tracking_ref,
        current_leg.planned_arrival_at as current_leg_planned_arrival_at,
        next_leg.planned_departure_at as next_leg_planned_departure_at
    from state
    left join legs as current_leg
        on state.shipment_id = current_leg.shipment_id
        and current_leg.leg_no = coalesce(state.current_leg_no, 1)
    left join legs as next_leg
        on state.shipment_id = next_leg.shipment_id
        and next_leg.leg_no = coalesce(state.current_leg_no, 1) + 1
)

select
    {"".join(f"b.{c}, " for c in passthrough)}b.shipment_id,
    b.order_id,
    b.at as as_of,
    b.created_at,
    b.planned_delivery_at,
    b.known_delivered_at,
    b.current_tracking_ref,
    b.last_tracking_ref,
    {columns}
from base as b
"""


def build_features(
    con: duckdb.DuckDBPyConnection,
    points: str,
    params: dict | None = None,
    passthrough: tuple[str, ...] = (),
    sources: Sources = STAGING,
    respect_receipt: bool = True,
    categorical: tuple[str, ...] = (),
) -> pd.DataFrame:
    """Run :func:`feature_sql`: the ``passthrough`` columns, :data:`ID_COLUMNS`, the features
    (the text columns in ``categorical`` as pandas categoricals: :func:`ml.frames.fetch_frame`)."""
    sql = feature_sql(points, passthrough, sources, respect_receipt)
    return fetch_frame(con, sql, params, categorical)


# ------------------------------------------------------------------------------ training points


def training_points(sources: Sources = STAGING) -> str:
    """The prediction points of the history, as a query with ``$cutoff``, ``$start``, ``$end``,
    ``$maturity_days``, ``$step_hours`` and ``$max_steps`` parameters.

    Shipments created in ``[$start, $end)`` and at least ``$maturity_days`` before ``$cutoff``,
    whose delivery (the last leg's DELIVERED scan) happened by ``$cutoff``. Each gets a point at
    dispatch (its creation), one at every scan before its delivery that was received on the day
    it happened (a scan that arrived days late was not a moment anyone could predict from), and
    one every ``$step_hours`` in between (at most ``$max_steps``; none when the step is 0).
    ``actual_delivered_at`` is the label.
    """
    return f"""
    with
    shipments as (
        select shipment_id, created_at
        from {sources.shipments}
        where created_at >= $start and created_at < $end
            and created_at <= $cutoff - to_days(cast($maturity_days as integer))
            and hash(shipment_id) % {SAMPLE_SCALE} < $keep
    ),
    shipment_legs as (
        select legs.shipment_id, legs.leg_no, legs.tracking_ref
        from {sources.legs} as legs
        inner join shipments on legs.shipment_id = shipments.shipment_id
    ),
    last_legs as (
        select shipment_id, tracking_ref
        from shipment_legs
        qualify leg_no = max(leg_no) over (partition by shipment_id)
    ),
    delivered as (
        select last_legs.shipment_id, min(e.event_at) as actual_delivered_at
        from {sources.events} as e
        inner join last_legs on e.tracking_ref = last_legs.tracking_ref
        where e.is_actual and e.event_code = 'DELIVERED' and e.event_at <= $cutoff
        group by last_legs.shipment_id
    ),
    labelled as (
        select shipments.shipment_id, shipments.created_at, delivered.actual_delivered_at
        from shipments
        inner join delivered on shipments.shipment_id = delivered.shipment_id
        where delivered.actual_delivered_at > shipments.created_at
    ),
    scans as (
        select distinct shipment_legs.shipment_id, e.event_at as as_of
        from {sources.events} as e
        inner join shipment_legs on e.tracking_ref = shipment_legs.tracking_ref
        where e.is_actual
            and cast(e.partition_key as date) <= cast(e.event_at at time zone 'UTC' as date)
    ),
    steps as (
        select
            shipment_id,
            created_at + to_microseconds(
                cast(k * $step_hours * 3600 * 1000000 as bigint)
            ) as as_of
        from (
            select
                shipment_id,
                created_at,
                actual_delivered_at,
                unnest(range(1, cast(least(
                    $max_steps + 1,
                    ceil({_h("actual_delivered_at", "created_at")} / $step_hours)
                ) as bigint))) as k
            from labelled
            where $step_hours > 0
        )
        where created_at + to_microseconds(cast(k * $step_hours * 3600 * 1000000 as bigint))
            < actual_delivered_at
    ),
    points as (
        select shipment_id, created_at as as_of, 'dispatch' as point_kind from labelled
        union all
        select scans.shipment_id, scans.as_of, 'scan'
        from scans
        inner join labelled on scans.shipment_id = labelled.shipment_id
        where scans.as_of >= labelled.created_at and scans.as_of < labelled.actual_delivered_at
        union all
        select shipment_id, as_of, 'between_scans' from steps
    )
    select points.*, labelled.actual_delivered_at
    from points
    inner join labelled on points.shipment_id = labelled.shipment_id
    """


#: shipments are sampled by ``hash(shipment_id) % SAMPLE_SCALE < keep``
SAMPLE_SCALE = 100_000


def sample_keep(
    con: duckdb.DuckDBPyConnection, params: dict, most: int, sources: Sources = STAGING
) -> int:
    """``keep`` (of :data:`SAMPLE_SCALE`) so that about ``most`` of the shipments the points
    would cover remain (all of them when ``most`` is 0 or they are fewer)."""
    if most <= 0:
        return SAMPLE_SCALE
    eligible = con.execute(
        f"""select count(*) from {sources.shipments}
        where created_at >= $start and created_at < $end
            and created_at <= $cutoff - to_days(cast($maturity_days as integer))""",
        {k: params[k] for k in ("start", "end", "cutoff", "maturity_days")},
    ).fetchone()[0]
    if eligible <= most:
        return SAMPLE_SCALE
    return max(1, int(SAMPLE_SCALE * most / eligible))


def training_examples(
    con: duckdb.DuckDBPyConnection,
    cutoff: datetime,
    policy: EtaPolicy,
    start: datetime | None = None,
    end: datetime | None = None,
    sources: Sources = STAGING,
    keep: int | None = None,
) -> pd.DataFrame:
    """Every prediction point of the shipments created in ``[start, end)`` whose delivery was
    known at ``cutoff``, with its features and targets: ``remaining_hours`` (delivery - as_of)
    and ``delay_hours`` (delivery - planned delivery). Sorted by creation, shipment, moment.

    Only a sample of the shipments when they are more than ``policy.max_training_shipments``
    (``keep``: the share of :data:`SAMPLE_SCALE` to keep instead); the share kept is in
    ``frame.attrs["sampled_share"]``."""
    params = {
        "cutoff": pd.Timestamp(cutoff),
        "start": pd.Timestamp(start) if start is not None else pd.Timestamp("1970-01-01", tz="UTC"),
        "end": pd.Timestamp(end) if end is not None else pd.Timestamp("2999-01-01", tz="UTC"),
        "maturity_days": int(policy.maturity_days),
        "step_hours": float(policy.between_scans_hours),
        "max_steps": int(policy.max_between_scans),
    }
    if keep is None:
        keep = sample_keep(con, params, policy.max_training_shipments, sources)
    params["keep"] = int(keep)
    frame = build_features(
        con,
        training_points(sources),
        params,
        passthrough=("point_kind", "actual_delivered_at"),
        sources=sources,
        # a million-order history gives millions of examples: their repeated text (carriers,
        # modes, countries, event codes, the kind of point) as categoricals, not strings
        categorical=(*categorical_names(), "point_kind"),
    )
    frame["remaining_hours"] = (
        frame["actual_delivered_at"] - frame["as_of"]
    ).dt.total_seconds() / 3600
    frame["delay_hours"] = (
        frame["actual_delivered_at"] - frame["planned_delivery_at"]
    ).dt.total_seconds() / 3600
    frame = frame.sort_values(["created_at", "shipment_id", "as_of", "point_kind"]).reset_index(
        drop=True
    )
    frame.attrs["sampled_share"] = keep / SAMPLE_SCALE
    return frame


def lake_clock(con: duckdb.DuckDBPyConnection, sources: Sources = STAGING) -> pd.Timestamp:
    """The latest shipment creation or actual scan in the lake: "now" for a replayed world
    (scans time-stamped after the last ingestion are ignored, as in ``int_lake_clock``)."""
    value = con.execute(
        f"""
        select greatest(
            (select max(created_at) from {sources.shipments}),
            (select max(event_at) from {sources.events}
             where is_actual and event_at <= (select max(ingested_at) from {sources.events}))
        )"""
    ).fetchone()[0]
    if value is None:
        raise LookupError(f"no shipments in {sources.shipments}: build the lake first")
    return pd.Timestamp(value)


# ------------------------------------------------------------------------------------ catalogue


def catalogue_markdown() -> str:
    """The features as a Markdown table (the catalogue in ``docs/eta.md``)."""
    lines = ["| feature | family | definition |", "|---|---|---|"]
    for f in FEATURES:
        kind = " (categorical)" if f.categorical else ""
        lines.append(f"| `{f.name}` | {f.family} | {f.definition}{kind} |")
    return "\n".join(lines) + "\n"
