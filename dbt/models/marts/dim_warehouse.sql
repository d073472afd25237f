-- One row per warehouse of the network: central warehouses stock the whole catalogue,
-- forward warehouses the popular products near their customers.
select
    -- ids
    warehouse_id,

    -- strings
    warehouse_name,
    warehouse_type,
    city,
    country_code,
    timezone,

    -- numerics
    lat,
    lon,
    outbound_capacity_per_day,

    -- booleans
    warehouse_type = 'forward' as is_forward,

    -- dates
    opened_on

from {{ ref('stg_reference__warehouses') }}
