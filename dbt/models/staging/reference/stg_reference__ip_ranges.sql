with

source as (

    select * from {{ source('reference', 'ip_ranges') }}

),

renamed as (

    select
        -- ids
        cast(ip_from as bigint) as ip_from,
        cast(ip_to as bigint) as ip_to,

        -- strings
        country_code,
        city,

        -- numerics
        cast(latitude as double) as lat,
        cast(longitude as double) as lon,
        cast(ip_to as bigint) - cast(ip_from as bigint) + 1 as address_count,

        -- lineage
        _partition_key as partition_key,
        _ingested_at as ingested_at

    from source

)

select * from renamed
