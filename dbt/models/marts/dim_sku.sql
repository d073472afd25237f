-- One row per product of every source system's catalogue.
with

skus as (

    select * from {{ ref('stg_reference__skus') }}

),

olist_products as (

    select * from {{ ref('stg_olist__products') }}

),

unioned as (

    select
        sku_id,
        'oms' as source_system,
        sku_name,
        category,
        currency,
        risk_class,
        weight_kg,
        volume_l,
        list_unit_price,
        launched_on
    from skus

    union all

    -- Olist products have a category and dimensions, no name, price list or risk class
    select
        product_id,
        'olist',
        null,
        category,
        'BRL',
        null,
        weight_kg,
        volume_l,
        null,
        null
    from olist_products

)

select
    -- ids
    sku_id,
    source_system,

    -- strings
    sku_name,
    category,
    currency,
    risk_class,

    -- numerics
    weight_kg,
    volume_l,
    list_unit_price,

    -- booleans
    risk_class = 'high' as is_high_risk,

    -- dates
    launched_on

from unioned
