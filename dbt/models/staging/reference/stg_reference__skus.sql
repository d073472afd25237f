with

source as (

    select * from {{ source('reference', 'skus') }}

),

renamed as (

    select
        -- ids
        sku_id,

        -- strings
        name as sku_name,
        category,
        currency,
        risk_class,

        -- numerics
        cast(weight_kg as double) as weight_kg,
        cast(volume_l as double) as volume_l,
        cast(unit_price as decimal(18, 2)) as list_unit_price,

        -- dates
        cast(launched_on as date) as launched_on,

        -- lineage
        _partition_key as partition_key,
        _ingested_at as ingested_at

    from source

)

select * from renamed
