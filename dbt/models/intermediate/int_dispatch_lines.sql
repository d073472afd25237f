-- One row per OMS order line as the dispatch planner sees it at its wave: what to ship (SKU,
-- units, weight), where to (approximate destination, country, EU or not), what was promised
-- and whether the order made the day's line-haul cut-off in the destination's local time.
-- The wave is the order's UTC day, the dispatch asset's daily partition (ml/dispatch).
with

orders as (

    select * from {{ ref('stg_oms__orders') }}

),

lines as (

    select * from {{ ref('int_order_lines') }}
    where source_system = 'oms'

),

countries as (

    select country_code, timezone, is_eu from {{ ref('countries') }}

)

select
    -- ids
    lines.order_id || '/' || cast(lines.line_no as varchar) as order_line_id,
    lines.order_id,
    lines.line_no,
    lines.sku_id,

    -- strings
    orders.promise_type,
    orders.shipping_country_code,

    -- numerics
    lines.quantity,
    lines.unit_weight_kg,
    lines.line_weight_kg,
    lines.line_amount,
    orders.shipping_lat_approx as ship_lat,
    orders.shipping_lon_approx as ship_lon,
    cast(extract(hour from timezone(coalesce(countries.timezone, 'UTC'), orders.ordered_at))
        as integer) as local_order_hour,

    -- booleans
    coalesce(countries.is_eu, false) as is_eu_destination,

    -- dates
    cast(timezone('UTC', orders.ordered_at) as date) as wave_date,
    orders.promised_delivery_date,

    -- timestamps
    orders.ordered_at

from lines
inner join orders on lines.order_id = orders.order_id
left join countries on orders.shipping_country_code = countries.country_code
