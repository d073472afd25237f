-- Per order: how it was fulfilled (shipments, warehouses, split, units shipped, weight).
with

shipments as (

    select * from {{ ref('stg_tms__shipments') }}

),

shipment_units as (

    select shipment_id, sum(quantity) as shipped_units
    from {{ ref('stg_tms__shipment_lines') }}
    group by shipment_id

),

last_mile as (

    select shipment_id, carrier_id as last_mile_carrier_id
    from {{ ref('stg_tms__shipment_legs') }}
    where is_last_mile

),

per_shipment as (

    select
        shipments.*,
        coalesce(shipment_units.shipped_units, 0) as shipped_units,
        last_mile.last_mile_carrier_id,
        -- the primary shipment is the heaviest, then the first created
        row_number() over (
            partition by shipments.order_id
            order by shipments.total_weight_kg desc, shipments.created_at, shipments.shipment_id
        ) as weight_rank
    from shipments
    left join shipment_units on shipments.shipment_id = shipment_units.shipment_id
    left join last_mile on shipments.shipment_id = last_mile.shipment_id

)

select
    order_id,
    count(*) as shipment_count,
    string_agg(distinct warehouse_id, '|' order by warehouse_id) as warehouse_ids,
    any_value(warehouse_id) filter (where weight_rank = 1) as primary_warehouse_id,
    any_value(last_mile_carrier_id) filter (where weight_rank = 1) as last_mile_carrier_id,
    count(distinct warehouse_id) > 1 as is_split_shipment,
    cast(sum(shipped_units) as bigint) as shipped_units,
    sum(total_weight_kg) as shipped_weight_kg,
    min(created_at) as first_shipment_created_at,
    max(created_at) as last_shipment_created_at
from per_shipment
group by order_id
