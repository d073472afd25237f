-- The dispatch plans' shipments as the dispatch_plan asset wrote them (both plans of every
-- wave); empty (same columns) until the first planning run.
{%- set columns = [
    ['wave_date', 'date'],
    ['plan', 'varchar'],
    ['order_id', 'varchar'],
    ['warehouse_id', 'varchar'],
    ['lane_variant', 'varchar'],
    ['modes', 'varchar'],
    ['is_deferred', 'boolean'],
    ['lines', 'integer'],
    ['units', 'integer'],
    ['weight_kg', 'double'],
    ['distance_km', 'double'],
    ['transport_cost_eur', 'double'],
    ['kg_co2e', 'double'],
    ['ship_date', 'date'],
    ['planned_delivery_date', 'date'],
    ['promised_delivery_date', 'date'],
    ['promise_type', 'varchar'],
    ['ship_lat', 'double'],
    ['ship_lon', 'double'],
    ['is_on_time', 'boolean'],
    ['is_split_order', 'boolean']
] %}

with

source as (

    {{ source_or_empty('ml', 'dispatch_shipments', columns) }}

),

renamed as (

    select
        cast(wave_date as date) as wave_date,
        cast(plan as varchar) as plan,
        cast(order_id as varchar) as order_id,
        cast(warehouse_id as varchar) as warehouse_id,
        cast(lane_variant as varchar) as lane_variant,
        cast(modes as varchar) as modes,
        cast(is_deferred as boolean) as is_deferred,
        cast(lines as integer) as lines,
        cast(units as integer) as units,
        cast(weight_kg as double) as weight_kg,
        cast(distance_km as double) as distance_km,
        cast(transport_cost_eur as double) as transport_cost_eur,
        cast(kg_co2e as double) as kg_co2e,
        cast(ship_date as date) as ship_date,
        cast(planned_delivery_date as date) as planned_delivery_date,
        cast(promised_delivery_date as date) as promised_delivery_date,
        cast(promise_type as varchar) as promise_type,
        cast(ship_lat as double) as ship_lat,
        cast(ship_lon as double) as ship_lon,
        cast(is_on_time as boolean) as is_on_time,
        cast(is_split_order as boolean) as is_split_order
    from source

)

select * from renamed
