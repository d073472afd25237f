with

source as (

    select * from {{ source('reference', 'warehouses') }}

),

renamed as (

    select
        -- ids
        warehouse_id,

        -- strings
        name as warehouse_name,
        warehouse_type,
        city,
        country_code,
        timezone,

        -- numerics
        cast(latitude as double) as lat,
        cast(longitude as double) as lon,
        cast(outbound_capacity_per_day as integer) as outbound_capacity_per_day,

        -- dates
        cast(opened_on as date) as opened_on,

        -- lineage
        _partition_key as partition_key,
        _ingested_at as ingested_at

    from source

)

select * from renamed
