with

source as (

    select * from {{ source('oms', 'order_lines') }}

),

renamed as (

    select
        -- ids
        order_id,
        cast(line_no as integer) as line_no,
        sku_id,

        -- numerics
        cast(quantity as integer) as quantity,
        cast(unit_price as decimal(18, 2)) as unit_price,
        cast(discount as decimal(18, 2)) as discount,
        cast(quantity as integer) * cast(unit_price as decimal(18, 2))
            - cast(discount as decimal(18, 2)) as line_amount,

        -- booleans
        discount > 0 as is_discounted,

        -- lineage
        _partition_key as partition_key,
        _ingested_at as ingested_at

    from source

)

select * from renamed
