with

source as (

    select * from {{ source('olist', 'olist_orders') }}

),

renamed as (

    select
        -- ids
        order_id,
        customer_id,

        -- strings
        order_status,

        -- booleans
        order_status = 'delivered' as is_delivered,
        order_status in ('canceled', 'unavailable') as is_cancelled,

        -- dates and timestamps (UTC; Olist sends Sao Paulo local time, converted at ingestion)
        cast(order_purchase_timestamp as timestamptz) as ordered_at,
        cast(order_approved_at as timestamptz) as approved_at,
        cast(order_delivered_carrier_date as timestamptz) as handed_to_carrier_at,
        cast(order_delivered_customer_date as timestamptz) as delivered_at,
        -- the promise is a Sao Paulo calendar day (sent as its local midnight)
        cast(
            timezone('America/Sao_Paulo', cast(order_estimated_delivery_date as timestamptz))
            as date
        ) as promised_delivery_date,

        -- lineage
        _partition_key as partition_key,
        _ingested_at as ingested_at

    from source

)

select * from renamed
