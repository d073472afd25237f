with

source as (

    select * from {{ source('payments', 'chargebacks') }}

),

renamed as (

    select
        -- ids
        label_id,
        order_id,

        -- strings
        label_type,
        reason_code,

        -- numerics
        cast(amount as decimal(18, 2)) as disputed_amount,

        -- booleans
        label_type = 'confirmed_fraud' as is_confirmed_fraud,

        -- timestamps
        cast(reported_at as timestamptz) as reported_at,

        -- lineage
        _partition_key as partition_key,
        _ingested_at as ingested_at

    from source

)

select * from renamed
