-- depends_on: {{ ref('int_order_changes') }}
{#- append_new_columns: a lake built before refreshed_at existed gains the column; its
    rows, refreshed_at null, leave no watermark, so that first run re-derives every key -#}
{{
    config(
        materialized='incremental',
        unique_key='order_id',
        incremental_strategy='delete+insert',
        on_schema_change='append_new_columns',
        post_hook="{{ delete_markers('source_system') }}",
    )
}}
-- One row per order of every source system: what was bought, how it was promised, fulfilled
-- and delivered, whether on time and complete, what it cost to ship and what it emitted.
--
-- Incremental by order (macros/incremental.sql): a run re-derives every order with an input
-- landed since its last run (int_order_changes: the order, its lines, cancellation, reviews,
-- shipments, legs, carrier events...), and every order whose on-time outcome is still open
-- (the clock turns it late once its promise has passed).
with

{% if is_incremental() %}
changed as (

    -- (legs change with their inputs, which this feed has too, or with the clock, in a column
    -- this mart does not read: fct_shipment_legs' own re-derivations are not followed)
    select order_id from {{ ref('int_order_changes') }} where ingested_at > {{ ingested_since() }}
    union
    select order_id from {{ this }} where is_on_time is null and not is_cancelled

),
{% endif %}

orders as (

    select * from {{ ref('int_orders') }}
    {{ only_changed('order_id') }}

),

lines as (

    select
        order_id,
        count(*) as line_count,
        sum(quantity) as ordered_units,
        sum(line_amount) as items_amount,
        sum(line_weight_kg) as ordered_weight_kg
    from {{ ref('int_order_lines') }}
    {{ only_changed('order_id') }}
    group by order_id

),

fulfilment as (

    select * from {{ ref('int_order_fulfilment') }}
    {{ only_changed('order_id') }}

),

cancellations as (

    select * from {{ ref('stg_oms__cancellations') }}
    {{ only_changed('order_id') }}
    qualify row_number() over (partition by order_id order by cancelled_at) = 1

),

legs as (

    select * from {{ ref('fct_shipment_legs') }}
    {{ only_changed('order_id') }}

),

shipment_delivery as (

    select
        shipment_id,
        any_value(order_id) as order_id,
        min(actual_departure_at) filter (where leg_no = 1) as shipped_at,
        max(actual_arrival_at) filter (where is_last_mile) as delivered_at,
        bool_or(was_reported_lost) as was_lost,
        bool_or(was_damaged) as was_damaged,
        sum(failed_attempt_count) as failed_attempt_count,
        sum(exception_event_count) as exception_event_count,
        sum(kg_co2e) as kg_co2e,
        sum(green_kg_co2e) as green_kg_co2e,
        max(green_extra_days) as green_extra_days,
        sum(transport_cost_eur) as transport_cost_eur,
        string_agg(mode, '>' order by leg_no) as route_modes
    from legs
    group by shipment_id

),

order_delivery as (

    select
        order_id,
        min(shipped_at) as shipped_at,
        -- an order is delivered when its last shipment is
        case when count(delivered_at) = count(*) then max(delivered_at) end as delivered_at,
        bool_or(was_lost) as was_lost,
        bool_or(was_damaged) as was_damaged,
        sum(failed_attempt_count) as failed_attempt_count,
        sum(exception_event_count) as exception_event_count,
        sum(kg_co2e) as kg_co2e,
        sum(green_kg_co2e) as green_kg_co2e,
        max(green_extra_days) as green_extra_days,
        sum(transport_cost_eur) as transport_cost_eur,
        string_agg(distinct route_modes, '|' order by route_modes) as route_modes
    from shipment_delivery
    group by order_id

),

feedback as (

    select
        order_id,
        avg(rating) as avg_rating,
        count(rating) as review_count,
        bool_or(contact_reason = 'wrong_item') as reported_wrong_item,
        bool_or(contact_reason = 'damaged') as reported_damaged,
        bool_or(contact_reason in ('late_delivery', 'damaged', 'wrong_item', 'other'))
            as has_complaint,
        bool_or(is_wismo) as has_wismo_contact
    from {{ ref('stg_crm__reviews') }}
    {{ only_changed('order_id') }}
    group by order_id

),

clock as (

    select * from {{ ref('int_lake_clock') }}

),

joined as (

    select
        orders.*,
        lines.line_count,
        lines.ordered_units,
        lines.items_amount,
        lines.ordered_weight_kg,
        fulfilment.shipment_count,
        fulfilment.warehouse_ids,
        fulfilment.primary_warehouse_id,
        fulfilment.last_mile_carrier_id,
        fulfilment.is_split_shipment,
        -- Olist reports no shipments: an order handed to the carrier shipped all its items
        coalesce(
            fulfilment.shipped_units,
            case when orders.source_shipped_at is not null then lines.ordered_units end
        ) as shipped_units,
        fulfilment.first_shipment_created_at,
        cancellations.cancelled_at,
        coalesce(
            cancellations.cancellation_reason,
            case when orders.source_status in ('canceled', 'unavailable') then orders.source_status end
        ) as cancellation_reason,
        coalesce(orders.source_shipped_at, order_delivery.shipped_at) as shipped_at,
        coalesce(orders.source_delivered_at, order_delivery.delivered_at) as delivered_at,
        order_delivery.was_lost,
        order_delivery.was_damaged,
        order_delivery.failed_attempt_count,
        order_delivery.exception_event_count,
        order_delivery.kg_co2e,
        order_delivery.green_kg_co2e,
        order_delivery.green_extra_days,
        order_delivery.transport_cost_eur,
        order_delivery.route_modes,
        feedback.avg_rating,
        feedback.review_count,
        feedback.reported_wrong_item,
        feedback.reported_damaged,
        feedback.has_complaint,
        feedback.has_wismo_contact,
        clock.as_of
    from orders
    left join lines on orders.order_id = lines.order_id
    left join fulfilment on orders.order_id = fulfilment.order_id
    left join cancellations on orders.order_id = cancellations.order_id
    left join order_delivery on orders.order_id = order_delivery.order_id
    left join feedback on orders.order_id = feedback.order_id
    cross join clock

),

derived as (

    select
        *,
        cancelled_at is not null or coalesce(source_status in ('canceled', 'unavailable'), false)
            as is_cancelled,
        delivered_at is not null as is_delivered,
        cast(timezone(destination_timezone, delivered_at) as date) as delivered_local_date,
        -- on time: delivered by the end of the promised local day; late: delivered after it,
        -- or not delivered although that moment has passed; unknown while it has not
        case
            when cancelled_at is not null or coalesce(source_status in ('canceled', 'unavailable'), false)
                then null
            when delivered_at is not null then delivered_at <= promised_by_at
            when promised_by_at < as_of then false
        end as is_on_time,
        coalesce(shipped_units, 0) >= coalesce(ordered_units, 0) as is_complete,
        coalesce(was_damaged, false) or coalesce(reported_damaged, false) as is_damaged,
        coalesce(reported_wrong_item, false) as is_wrong_item,
        coalesce(was_lost, false) and delivered_at is null as is_lost
    from joined

),

final as (

    select
        -- ids
        order_id,
        source_system,
        customer_id,
        primary_warehouse_id,
        last_mile_carrier_id,

        -- strings
        channel,
        payment_method,
        currency,
        promise_type,
        shipping_country_code,
        destination_timezone,
        warehouse_ids,
        route_modes,
        case
            when is_cancelled then 'cancelled'
            when delivered_at is not null then 'delivered'
            when is_lost then 'lost'
            when shipped_at is not null then 'in_transit'
            when shipment_count > 0 then 'awaiting_pickup'
            else 'awaiting_fulfilment'
        end as order_status,
        cancellation_reason,

        -- numerics
        cast(coalesce(line_count, 0) as integer) as line_count,
        cast(coalesce(ordered_units, 0) as integer) as ordered_units,
        cast(coalesce(shipped_units, 0) as integer) as shipped_units,
        cast(coalesce(shipment_count, 0) as integer) as shipment_count,
        cast(items_amount as decimal(18, 2)) as items_amount,
        shipping_fee,
        order_total,
        ordered_weight_kg,
        cast(transport_cost_eur as decimal(18, 4)) as transport_cost_eur,
        kg_co2e,
        case when promise_type = 'green' then kg_co2e else green_kg_co2e end as green_option_kg_co2e,
        cast(case when promise_type = 'green' then 0 else green_extra_days end as integer)
            as green_option_extra_days,
        cast(coalesce(failed_attempt_count, 0) as integer) as failed_attempt_count,
        cast(coalesce(exception_event_count, 0) as integer) as exception_event_count,
        cast(
            case when delivered_local_date > promised_delivery_date
                then delivered_local_date - promised_delivery_date else 0 end as integer
        ) as days_late,
        round(epoch(shipped_at - ordered_at) / 3600.0, 2) as order_to_ship_hours,
        round(epoch(delivered_at - shipped_at) / 3600.0, 2) as ship_to_delivery_hours,
        round(epoch(delivered_at - ordered_at) / 3600.0, 2) as order_to_delivery_hours,
        avg_rating,
        cast(coalesce(review_count, 0) as integer) as review_count,

        -- booleans
        promise_type = 'green' as is_green_option,
        promise_type = 'next_day' as is_next_day_promise,
        coalesce(is_split_shipment, false) as is_split_shipment,
        is_cross_border,
        is_destination_eu,
        has_promo_code,
        is_cancelled,
        is_delivered,
        is_lost,
        is_on_time,
        is_complete,
        is_damaged,
        is_wrong_item,
        coalesce(has_complaint, false) as has_complaint,
        coalesce(has_wismo_contact, false) as has_wismo_contact,
        -- an error: the customer got less, or something other or broken, or nothing at all
        is_delivered and (not is_complete or is_damaged or is_wrong_item)
            or is_lost as has_fulfilment_error,
        -- the perfect order: delivered on time, complete, undamaged, right items, no complaint
        coalesce(
            is_delivered and is_on_time and is_complete and not is_damaged and not is_wrong_item
            and not coalesce(has_complaint, false),
            false
        ) as is_perfect_order,
        -- recovered: something went wrong on the way, and it still reached the customer
        is_delivered and (coalesce(exception_event_count, 0) > 0 or coalesce(failed_attempt_count, 0) > 0)
            as is_recovered,

        -- dates and timestamps
        cast(timezone('UTC', ordered_at) as date) as order_date,
        promised_delivery_date,
        promised_by_at,
        delivered_local_date,
        ordered_at,
        source_paid_at as paid_at,
        first_shipment_created_at as picked_at,
        shipped_at,
        delivered_at,
        cancelled_at,
        partition_key,
        {{ run_started() }} as refreshed_at

    from derived

)

select * from final
{{ replaced_keys('final', 'order_id', 'changed') }}
-- clustered by order: the tracking page's point lookups read one row group, not the table
order by order_id
