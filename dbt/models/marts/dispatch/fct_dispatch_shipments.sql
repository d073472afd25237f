-- One row per planned shipment of each plan: which warehouse ships which order, on which lane,
-- at what cost and CO2e, and when it arrives against the promise. Positions for the maps.
with

shipments as (

    select * from {{ ref('stg_ml__dispatch_shipments') }}

),

warehouses as (

    select warehouse_id, warehouse_type, lat, lon from {{ ref('dim_warehouse') }}

)

select
    -- ids
    shipments.plan || '/' || shipments.order_id || '/' || shipments.warehouse_id
        as dispatch_shipment_id,
    shipments.order_id,
    shipments.warehouse_id,

    -- strings
    shipments.plan,
    shipments.lane_variant,
    shipments.modes,
    shipments.promise_type,
    warehouses.warehouse_type,

    -- numerics
    shipments.lines,
    shipments.units,
    shipments.weight_kg,
    shipments.distance_km,
    shipments.transport_cost_eur,
    shipments.kg_co2e,
    warehouses.lat as warehouse_lat,
    warehouses.lon as warehouse_lon,
    shipments.ship_lat as destination_lat_approx,
    shipments.ship_lon as destination_lon_approx,

    -- booleans
    shipments.is_deferred,
    shipments.is_on_time,
    shipments.is_split_order,

    -- dates
    shipments.wave_date,
    shipments.ship_date,
    shipments.planned_delivery_date,
    shipments.promised_delivery_date

from shipments
left join warehouses on shipments.warehouse_id = warehouses.warehouse_id
