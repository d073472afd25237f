-- The van rounds' stops in visiting order as the route_plans asset wrote them; empty until the
-- first run.
{%- set columns = [
    ['wave_date', 'date'],
    ['route_id', 'varchar'],
    ['stop_no', 'integer'],
    ['order_id', 'varchar'],
    ['warehouse_id', 'varchar'],
    ['lat', 'double'],
    ['lon', 'double'],
    ['load_kg', 'double'],
    ['window_start_min', 'double'],
    ['window_end_min', 'double'],
    ['arrival_min', 'double']
] %}

with

source as (

    {{ source_or_empty('ml', 'route_stops', columns) }}

),

renamed as (

    select
        cast(wave_date as date) as wave_date,
        cast(route_id as varchar) as route_id,
        cast(stop_no as integer) as stop_no,
        cast(order_id as varchar) as order_id,
        cast(warehouse_id as varchar) as warehouse_id,
        cast(lat as double) as lat,
        cast(lon as double) as lon,
        cast(load_kg as double) as load_kg,
        cast(window_start_min as double) as window_start_min,
        cast(window_end_min as double) as window_end_min,
        cast(arrival_min as double) as arrival_min
    from source

)

select * from renamed
