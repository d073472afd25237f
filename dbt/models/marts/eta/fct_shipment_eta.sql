-- One row per shipment with an ETA: the latest prediction (the newest point in time it was made
-- for, batch or stream), against the carrier's plan and the customer's promise, and whether the
-- shipment has been delivered since. What the tracking page shows as "ETA" and "delay warning".
with

etas as (

    select * from {{ ref('stg_ml__shipment_etas') }}

),

latest as (

    select
        *,
        count(*) over (partition by shipment_id) as prediction_count
    from etas
    qualify row_number() over (
        partition by shipment_id
        order by as_of desc, predicted_at desc, eta_source desc
    ) = 1

),

orders as (

    select order_id, promised_by_at, promised_delivery_date, promise_type
    from {{ ref('fct_orders') }}

),

delivered as (

    select shipment_id, min(event_at) as delivered_at
    from {{ ref('fct_tracking_events') }}
    where event_code = 'DELIVERED'
    group by 1

)

select
    -- ids
    latest.shipment_id,
    latest.order_id,
    latest.tracking_ref,
    latest.model_version,

    -- strings
    latest.eta_source,
    latest.last_event_code,
    orders.promise_type,

    -- numerics
    latest.remaining_hours,
    cast(latest.prediction_count as integer) as prediction_count,
    cast(
        (epoch(latest.predicted_delivery_at) - epoch(latest.planned_delivery_at)) / 3600.0
        as double
    ) as hours_vs_plan,
    cast(
        (epoch(latest.predicted_delivery_at) - epoch(orders.promised_by_at)) / 3600.0 as double
    ) as hours_vs_promise,

    -- booleans
    coalesce(latest.predicted_delivery_at > orders.promised_by_at, false) as is_predicted_late,
    delivered.delivered_at is not null as is_delivered,

    -- dates
    orders.promised_delivery_date,

    -- timestamps
    latest.as_of,
    latest.predicted_delivery_at,
    latest.planned_delivery_at,
    orders.promised_by_at,
    latest.predicted_at,
    delivered.delivered_at

from latest
left join orders using (order_id)
left join delivered using (shipment_id)
-- clustered by order (point lookups from the tracking page prune row groups)
order by order_id
