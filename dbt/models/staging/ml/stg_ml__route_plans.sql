-- The van rounds' routes as the route_plans asset wrote them; empty until the first run.
{%- set columns = [
    ['wave_date', 'date'],
    ['route_id', 'varchar'],
    ['warehouse_id', 'varchar'],
    ['vehicle_no', 'integer'],
    ['engine', 'varchar'],
    ['stops', 'integer'],
    ['load_kg', 'double'],
    ['distance_km', 'double'],
    ['duration_min', 'double'],
    ['start_min', 'double'],
    ['end_min', 'double'],
    ['kg_co2e', 'double'],
    ['is_feasible', 'boolean'],
    ['solve_seconds', 'double'],
    ['planned_at', 'timestamptz']
] %}

with

source as (

    {{ source_or_empty('ml', 'route_plans', columns) }}

),

renamed as (

    select
        cast(wave_date as date) as wave_date,
        cast(route_id as varchar) as route_id,
        cast(warehouse_id as varchar) as warehouse_id,
        cast(vehicle_no as integer) as vehicle_no,
        cast(engine as varchar) as engine,
        cast(stops as integer) as stops,
        cast(load_kg as double) as load_kg,
        cast(distance_km as double) as distance_km,
        cast(duration_min as double) as duration_min,
        cast(start_min as double) as start_min,
        cast(end_min as double) as end_min,
        cast(kg_co2e as double) as kg_co2e,
        cast(is_feasible as boolean) as is_feasible,
        cast(solve_seconds as double) as solve_seconds,
        cast(planned_at as timestamptz) as planned_at
    from source

)

select * from renamed
