-- One row per order line: product, quantity, amount, units shipped (for the fill rate) and the
-- line's share of its order's transport emissions and cost, allocated by mass.
with

lines as (

    select * from {{ ref('int_order_lines') }}

),

shipped as (

    select shipments.order_id, shipment_lines.line_no, sum(shipment_lines.quantity) as shipped_units
    from {{ ref('stg_tms__shipment_lines') }} as shipment_lines
    inner join {{ ref('stg_tms__shipments') }} as shipments
        on shipment_lines.shipment_id = shipments.shipment_id
    group by shipments.order_id, shipment_lines.line_no

),

orders as (

    select
        order_id,
        order_date,
        ordered_weight_kg,
        kg_co2e,
        transport_cost_eur,
        is_cancelled,
        cancellation_reason
    from {{ ref('fct_orders') }}

)

select
    -- ids
    lines.order_id || '/' || lines.line_no as order_line_id,
    lines.order_id,
    lines.line_no,
    lines.sku_id,
    lines.source_system,

    -- numerics
    lines.quantity,
    cast(coalesce(shipped.shipped_units, 0) as integer) as shipped_units,
    lines.unit_price,
    lines.discount,
    lines.line_amount,
    lines.unit_weight_kg,
    lines.line_weight_kg,
    lines.line_weight_kg / nullif(orders.ordered_weight_kg, 0) as weight_share,
    orders.kg_co2e * lines.line_weight_kg / nullif(orders.ordered_weight_kg, 0) as kg_co2e,
    cast(
        orders.transport_cost_eur * lines.line_weight_kg / nullif(orders.ordered_weight_kg, 0)
        as decimal(18, 4)
    ) as transport_cost_eur,

    -- booleans
    lines.discount > 0 as is_discounted,
    coalesce(shipped.shipped_units, 0) >= lines.quantity as is_filled,
    orders.is_cancelled,

    -- dates
    orders.order_date

from lines
inner join orders on lines.order_id = orders.order_id
left join shipped on lines.order_id = shipped.order_id and lines.line_no = shipped.line_no
