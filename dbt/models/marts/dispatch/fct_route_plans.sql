-- One row per van route of a forward warehouse's daily round (VRPTW, ml/dispatch/routes.py).
with

routes as (

    select * from {{ ref('stg_ml__route_plans') }}

),

warehouses as (

    select warehouse_id, lat, lon from {{ ref('dim_warehouse') }}

)

select
    -- ids
    routes.route_id,
    routes.warehouse_id,

    -- strings
    routes.engine,

    -- numerics
    routes.vehicle_no,
    routes.stops,
    routes.load_kg,
    routes.distance_km,
    routes.duration_min,
    routes.start_min,
    routes.end_min,
    routes.kg_co2e,
    routes.solve_seconds,
    warehouses.lat as depot_lat,
    warehouses.lon as depot_lon,

    -- booleans
    routes.is_feasible,

    -- dates
    routes.wave_date,

    -- timestamps
    routes.planned_at

from routes
left join warehouses on routes.warehouse_id = warehouses.warehouse_id
