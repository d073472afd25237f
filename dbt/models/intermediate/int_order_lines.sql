-- Every order line of every source system in one shape, with the product's weight.
with

oms_lines as (

    select * from {{ ref('stg_oms__order_lines') }}

),

skus as (

    select sku_id, weight_kg from {{ ref('stg_reference__skus') }}

),

olist_items as (

    select * from {{ ref('stg_olist__order_items') }}

),

olist_products as (

    select product_id, weight_kg from {{ ref('stg_olist__products') }}

),

unioned as (

    select
        oms_lines.order_id,
        oms_lines.line_no,
        oms_lines.sku_id,
        'oms' as source_system,
        oms_lines.quantity,
        oms_lines.unit_price,
        oms_lines.discount,
        oms_lines.line_amount,
        skus.weight_kg as unit_weight_kg
    from oms_lines
    left join skus on oms_lines.sku_id = skus.sku_id

    union all

    -- an Olist item is one unit; freight is the order's shipping fee, not part of the line
    select
        olist_items.order_id,
        olist_items.line_no,
        olist_items.product_id,
        'olist',
        1,
        olist_items.unit_price,
        cast(0 as decimal(18, 2)),
        olist_items.unit_price,
        olist_products.weight_kg
    from olist_items
    left join olist_products on olist_items.product_id = olist_products.product_id

)

select
    *,
    quantity * unit_weight_kg as line_weight_kg
from unioned
