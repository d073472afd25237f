-- The unified order timeline: one row per order and milestone, planned vs actual, across
-- shipments, carriers and modes. Milestones: ordered, paid, picked (the warehouse released
-- the shipment), shipped (the first leg departed), each leg's departure and arrival, out for
-- delivery, delivered.
--
-- Incremental by order (macros/incremental.sql): a run re-derives every order that fct_orders
-- or fct_shipment_legs re-derived since its last run, and every order with a milestone still
-- pending (the clock makes it overdue once its planned moment has passed).
{#- append_new_columns: a lake built before refreshed_at existed gains the column; its
    rows, refreshed_at null, leave no watermark, so that first run re-derives every key -#}
{{
    config(
        materialized='incremental',
        unique_key='order_id',
        incremental_strategy='delete+insert',
        on_schema_change='append_new_columns',
        post_hook="{{ delete_markers('timeline_id') }}",
    )
}}
with

{% if is_incremental() %}
changed as (

    select order_id from {{ ref('fct_orders') }} where refreshed_at > {{ refreshed_since() }}
    union
    select order_id from {{ ref('fct_shipment_legs') }} where refreshed_at > {{ refreshed_since() }}
    union
    select order_id from {{ this }} where milestone_status = 'pending'

),
{% endif %}

orders as (

    select * from {{ ref('fct_orders') }}
    {{ only_changed('order_id') }}

),

legs as (

    select * from {{ ref('fct_shipment_legs') }}
    {{ only_changed('order_id') }}

),

order_milestones as (

    select order_id, cast(null as varchar) as shipment_id, cast(null as integer) as leg_no,
        10 as milestone_rank, 'ordered' as milestone,
        cast(null as varchar) as carrier_id, cast(null as varchar) as mode, cast(null as varchar) as location_name,
        ordered_at as planned_at, ordered_at as actual_at
    from orders
    union all
    select order_id, null, null, 20, 'paid', null, null, null, ordered_at, paid_at
    from orders
    union all
    select order_id, null, null, 30, 'picked', null, null, null,
        ordered_at + interval {{ var('pick_sla_hours', 24) }} hour, picked_at
    from orders
    where not is_cancelled or picked_at is not null
    union all
    select order_id, null, null, 40, 'shipped', null, null, null,
        ordered_at + interval {{ var('ship_sla_hours', 36) }} hour, shipped_at
    from orders
    where not is_cancelled or shipped_at is not null
    union all
    select order_id, null, null, 900, 'delivered', last_mile_carrier_id, 'last_mile', null,
        promised_by_at, delivered_at
    from orders
    where not is_cancelled

),

leg_milestones as (

    -- legs in order; a van leg's out-for-delivery sits between its departure and arrival
    select order_id, shipment_id, leg_no, 100 + leg_no * 10 as milestone_rank,
        'leg_' || leg_no || '_departed' as milestone, carrier_id, mode, origin_name,
        planned_departure_at, actual_departure_at
    from legs
    union all
    select order_id, shipment_id, leg_no, 105 + leg_no * 10,
        'leg_' || leg_no || '_arrived', carrier_id, mode, destination_hub_name,
        planned_arrival_at, actual_arrival_at
    from legs
    union all
    -- the van leaves at its planned departure: out for delivery
    select order_id, shipment_id, leg_no, 102 + leg_no * 10, 'out_for_delivery', carrier_id, mode, null,
        planned_departure_at, out_for_delivery_at
    from legs
    where is_last_mile

),

milestones as (

    select * from order_milestones
    union all
    select * from leg_milestones

),

final as (

    select
        -- ids
        md5(
            milestones.order_id || '|' || coalesce(milestones.shipment_id, '') || '|' || milestones.milestone
        ) as timeline_id,
        milestones.order_id,
        milestones.shipment_id,
        cast(milestones.leg_no as integer) as leg_no,
        milestones.carrier_id,

        -- strings
        milestones.milestone,
        milestones.mode,
        milestones.location_name,
        case
            when milestones.actual_at is not null then 'done'
            when milestones.planned_at < orders.as_of_at then 'overdue'
            else 'pending'
        end as milestone_status,

        -- numerics
        cast(milestones.milestone_rank as integer) as milestone_rank,
        round(epoch(milestones.actual_at - milestones.planned_at) / 3600.0, 2) as delay_hours,

        -- booleans
        milestones.actual_at > milestones.planned_at as is_late,

        -- timestamps
        milestones.planned_at,
        milestones.actual_at,
        {{ run_started() }} as refreshed_at

    from milestones
    inner join (
        select orders.order_id, clock.as_of as as_of_at
        from orders cross join {{ ref('int_lake_clock') }} as clock
    ) as orders on milestones.order_id = orders.order_id

)

select * from final
{{ replaced_keys('final', 'order_id', 'changed') }}
-- clustered by order (point lookups from the tracking page prune row groups)
order by order_id, shipment_id, milestone_rank
