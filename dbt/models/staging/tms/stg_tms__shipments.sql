with

source as (

    select * from {{ source('tms', 'shipments') }}

),

renamed as (

    select
        -- ids
        shipment_id,
        order_id,
        warehouse_id,

        -- strings
        service_level,

        -- numerics
        cast(total_weight_kg as double) as total_weight_kg,

        -- dates and timestamps
        cast(created_at as timestamptz) as created_at,
        cast(promised_delivery_date as date) as promised_delivery_date,

        -- lineage
        _partition_key as partition_key,
        _ingested_at as ingested_at

    from source

)

select * from renamed
