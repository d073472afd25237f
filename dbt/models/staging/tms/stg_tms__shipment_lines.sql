with

source as (

    select * from {{ source('tms', 'shipment_lines') }}

),

renamed as (

    select
        -- ids
        shipment_id,
        cast(line_no as integer) as line_no,
        sku_id,

        -- numerics
        cast(quantity as integer) as quantity,

        -- lineage
        _partition_key as partition_key,
        _ingested_at as ingested_at

    from source

)

select * from renamed
