with

source as (

    select * from {{ source('olist', 'olist_order_items') }}

),

renamed as (

    select
        -- ids
        order_id,
        cast(order_item_id as integer) as line_no,
        product_id,
        seller_id,

        -- numerics (BRL; Olist lists each unit as its own item)
        cast(price as decimal(18, 2)) as unit_price,
        cast(freight_value as decimal(18, 2)) as freight_value,

        -- timestamps
        cast(shipping_limit_date as timestamptz) as shipping_limit_at,

        -- lineage
        _partition_key as partition_key,
        _ingested_at as ingested_at

    from source

)

select * from renamed
