with

source as (

    select * from {{ source('oms', 'cancellations') }}

),

renamed as (

    select
        -- ids
        order_id,

        -- strings
        reason as cancellation_reason,

        -- booleans
        reason = 'fraud_suspected' as is_fraud_suspected,

        -- timestamps
        cast(cancelled_at as timestamptz) as cancelled_at,

        -- lineage
        _partition_key as partition_key,
        _ingested_at as ingested_at

    from source

)

select * from renamed
