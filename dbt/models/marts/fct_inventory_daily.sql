-- End-of-day stock per warehouse and product: on hand, reserved, available, stock-outs.
with

snapshots as (

    select * from {{ ref('stg_wms__inventory_snapshots') }}

)

select
    -- ids
    warehouse_id || '/' || sku_id || '/' || strftime(snapshot_date, '%Y-%m-%d') as inventory_day_id,
    warehouse_id,
    sku_id,

    -- numerics
    on_hand_qty,
    reserved_qty,
    greatest(on_hand_qty - reserved_qty, 0) as available_qty,
    inbound_qty,
    replenished_qty,

    -- booleans
    is_stock_out,
    on_hand_qty - reserved_qty <= 0 as is_unavailable,
    is_over_reserved,
    -- went out of stock today: in stock the day before
    is_stock_out and not coalesce(
        lag(is_stock_out) over (partition by warehouse_id, sku_id order by snapshot_date), true
    ) as is_new_stock_out,

    -- dates
    snapshot_date

from snapshots
