-- depends_on: {{ ref('int_order_changes') }}
{#- append_new_columns: a lake built before refreshed_at existed gains the column; its
    rows, refreshed_at null, leave no watermark, so that first run re-derives every key -#}
{{
    config(
        materialized='incremental',
        unique_key='order_id',
        incremental_strategy='delete+insert',
        on_schema_change='append_new_columns',
        post_hook="{{ delete_markers('leg_id') }}",
    )
}}
-- One row per shipment leg: where it goes, by which mode and carrier, planned vs actual
-- times from the canonical events, and its cost and emissions.
--
-- Incremental by order (macros/incremental.sql): a run re-derives the legs of every order with
-- an input landed since its last run (int_order_changes: its shipments, legs, carrier events...)
-- and of every order with a leg under way (its hours since the last scan grow with the clock).
with

{% if is_incremental() %}
changed as (

    select order_id from {{ ref('int_order_changes') }} where ingested_at > {{ ingested_since() }}
    union
    select order_id from {{ this }} where hours_since_last_scan is not null

),
{% endif %}

legs as (

    -- every leg with its cost and emissions (and the leg's own columns from staging)
    select * from {{ ref('int_shipment_legs__costed') }}
    {{ only_changed('order_id') }}

),

events as (

    select * from {{ ref('fct_tracking_events') }}
    where is_actual
    {%- if is_incremental() %}
        and tracking_ref in (select tracking_ref from legs)
    {%- endif %}

),

clock as (

    select * from {{ ref('int_lake_clock') }}

),

actuals as (

    -- a van leg departs when it goes out for delivery and arrives when it delivers; every
    -- other leg reports its own departure and arrival
    select
        tracking_ref,
        min(event_at) as first_scan_at,
        max(event_at) as last_scan_at,
        arg_max(event_code, event_seq) as last_event_code,
        min(event_at) filter (
            where (mode = 'last_mile' and event_code = 'OUT_FOR_DELIVERY')
            or (mode <> 'last_mile' and event_code = 'DEPARTED')
        ) as actual_departure_at,
        min(event_at) filter (
            where (mode = 'last_mile' and event_code = 'DELIVERED')
            or (mode <> 'last_mile' and event_code = 'ARRIVED')
        ) as actual_arrival_at,
        min(event_at) filter (where event_code = 'OUT_FOR_DELIVERY') as out_for_delivery_at,
        count(*) as scan_count,
        count(*) filter (where event_code = 'DELIVERY_FAILED') as failed_attempt_count,
        count(*) filter (where event_code in ('EXCEPTION', 'DELIVERY_FAILED', 'CUSTOMS_HOLD'))
            as exception_event_count,
        bool_or(event_code = 'CUSTOMS_HOLD') as had_customs_hold,
        bool_or(exception_reason = 'DAMAGED') as was_damaged,
        bool_or(exception_reason = 'LOST') as was_reported_lost,
        bool_or(exception_reason = 'ADDRESS_ISSUE') as had_address_issue
    from events
    group by tracking_ref

),

final as (

    select
        -- ids
        legs.shipment_id || '/' || legs.leg_no as leg_id,
        legs.shipment_id,
        legs.leg_no,
        legs.order_id,
        legs.carrier_id,
        legs.tracking_ref,

        -- strings
        legs.mode,
        legs.vehicle_class,
        legs.origin_name,
        legs.origin_country_code,
        legs.destination_hub_name,
        legs.destination_country_code,
        case
            when actuals.actual_arrival_at is not null then 'arrived'
            when coalesce(actuals.was_reported_lost, false) then 'lost'
            when actuals.actual_departure_at is not null then 'in_transit'
            when actuals.first_scan_at is not null then 'announced'
            else 'planned'
        end as leg_status,
        actuals.last_event_code,

        -- numerics
        legs.origin_lat,
        legs.origin_lon,
        legs.destination_lat_approx,
        legs.destination_lon_approx,
        legs.distance_km,
        legs.weight_kg,
        legs.tonne_km,
        legs.wtw_g_co2e_per_tkm,
        legs.ttw_kg_co2e,
        legs.wtt_kg_co2e,
        legs.kg_co2e,
        legs.transport_cost_eur,
        legs.green_mode,
        legs.green_kg_co2e,
        cast(legs.green_extra_days as integer) as green_extra_days,
        cast(coalesce(actuals.scan_count, 0) as integer) as scan_count,
        cast(coalesce(actuals.failed_attempt_count, 0) as integer) as failed_attempt_count,
        cast(coalesce(actuals.exception_event_count, 0) as integer) as exception_event_count,
        round(epoch(actuals.actual_departure_at - legs.planned_departure_at) / 3600.0, 2)
            as departure_delay_hours,
        round(epoch(actuals.actual_arrival_at - legs.planned_arrival_at) / 3600.0, 2)
            as arrival_delay_hours,
        -- a leg under way ages with the clock; one of a delivered shipment, or reported lost, is
        -- over (a missing arrival scan no longer matters)
        case
            when actuals.actual_arrival_at is null
                and not coalesce(actuals.was_reported_lost, false)
                and not coalesce(
                    bool_or(legs.is_last_mile and actuals.actual_arrival_at is not null)
                        over (partition by legs.shipment_id),
                    false
                )
                then round(epoch(clock.as_of - actuals.last_scan_at) / 3600.0, 2)
        end as hours_since_last_scan,

        -- booleans
        legs.is_last_mile,
        legs.is_cross_border,
        coalesce(actuals.had_customs_hold, false) as had_customs_hold,
        coalesce(actuals.was_damaged, false) as was_damaged,
        coalesce(actuals.was_reported_lost, false) as was_reported_lost,
        coalesce(actuals.had_address_issue, false) as had_address_issue,
        actuals.actual_arrival_at > legs.planned_arrival_at as is_arrived_late,

        -- timestamps
        legs.planned_departure_at,
        legs.planned_arrival_at,
        actuals.actual_departure_at,
        actuals.actual_arrival_at,
        actuals.out_for_delivery_at,
        actuals.first_scan_at,
        actuals.last_scan_at,
        {{ run_started() }} as refreshed_at

    from legs
    left join actuals on legs.tracking_ref = actuals.tracking_ref
    cross join clock

)

select * from final
{{ replaced_keys('final', 'order_id', 'changed') }}
-- clustered by order (point lookups from the tracking page prune row groups)
order by order_id, shipment_id, leg_no
