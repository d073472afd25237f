{{
    config(
        materialized='incremental',
        unique_key='tracking_ref',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
    )
}}
-- Canonical carrier events: one row per event id, ordered per tracking reference.
--
-- Incremental by tracking reference: a run re-derives every leg that received an event since
-- the last run (or, for a partitioned run, in the partition window: vars events_from /
-- events_to, or ORDERTOWER_EVENTS_FROM / _TO as Dagster passes them), from all of that leg's events. So an event that arrives late or
-- out of order lands in its place, its leg's sequence numbers are recomputed, and a re-sent
-- event (same id) is kept once: the copy received first wins.
with

{% if is_incremental() %}
changed as (

    select distinct tracking_ref
    from {{ ref('stg_carriers__carrier_events') }}
    where ingested_at > (select coalesce(max(ingested_at), timestamptz '1970-01-01') from {{ this }})
    {%- set events_from = var('events_from', env_var('ORDERTOWER_EVENTS_FROM', '')) %}
    {%- set events_to = var('events_to', env_var('ORDERTOWER_EVENTS_TO', '')) %}
    {% if events_from and events_to %}
        or partition_key between '{{ events_from }}' and '{{ events_to }}'
    {% endif %}

),
{% endif %}

events as (

    select * from {{ ref('stg_carriers__carrier_events') }}
    {% if is_incremental() %}
    where tracking_ref in (select tracking_ref from changed)
    {% endif %}

),

legs as (

    select
        legs.tracking_ref,
        legs.shipment_id,
        legs.leg_no,
        legs.mode as leg_mode,
        shipments.order_id
    from {{ ref('stg_tms__shipment_legs') }} as legs
    inner join {{ ref('stg_tms__shipments') }} as shipments
        on legs.shipment_id = shipments.shipment_id

),

deduplicated as (

    select
        * replace (
            -- the latest landing of any copy: the next incremental run starts after it
            max(ingested_at) over (partition by event_id) as ingested_at
        ),
        count(*) over (partition by event_id) as received_count,
        cast(partition_key as date) as received_date
    from events
    qualify row_number() over (
        partition by event_id order by partition_key, ingested_at, feed_format
    ) = 1

),

ordered as (

    select
        deduplicated.*,
        legs.shipment_id,
        legs.leg_no,
        legs.order_id,
        coalesce(legs.leg_mode, deduplicated.mode) as leg_mode,
        row_number() over (
            partition by deduplicated.tracking_ref
            order by deduplicated.event_at, deduplicated.event_code, deduplicated.event_id
        ) as event_seq,
        -- received before any event that happened after it? otherwise it came out of order
        min(deduplicated.received_date) over (
            partition by deduplicated.tracking_ref
            order by deduplicated.event_at desc, deduplicated.event_id desc
            rows between unbounded preceding and 1 preceding
        ) as earliest_receipt_of_later_events
    from deduplicated
    left join legs on deduplicated.tracking_ref = legs.tracking_ref

)

select
    -- ids
    event_id,
    tracking_ref,
    shipment_id,
    order_id,
    leg_no,
    carrier_id,

    -- strings
    feed_format,
    leg_mode as mode,
    event_code,
    exception_reason,
    event_classifier,
    carrier_status_code,
    carrier_status_text,
    location_name,
    location_country_code,

    -- numerics
    location_lat,
    location_lon,
    cast(event_seq as integer) as event_seq,
    cast(received_count as integer) as received_count,

    -- booleans
    is_actual,
    is_unmapped,
    received_date > cast(event_at as date) + 1 as is_late_arrival,
    coalesce(earliest_receipt_of_later_events < received_date, false) as is_out_of_order,

    -- dates and timestamps
    event_at,
    received_date,
    ingested_at

from ordered
-- clustered by order (point lookups from the tracking page prune row groups)
order by order_id, event_at
