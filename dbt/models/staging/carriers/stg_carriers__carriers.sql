with

source as (

    select * from {{ source('carriers', 'carriers') }}

),

renamed as (

    select
        -- ids
        carrier_id,

        -- strings
        name as carrier_name,
        carrier_type,
        feed_format,
        modes,
        split_part(modes, '|', 1) as primary_mode,
        country_code,

        -- lineage
        _partition_key as partition_key,
        _ingested_at as ingested_at

    from source

)

select * from renamed
