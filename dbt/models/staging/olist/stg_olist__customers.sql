with

source as (

    select * from {{ source('olist', 'olist_customers') }}

),

renamed as (

    -- customer_zip_code_prefix and customer_city are pii and not selected; the state (one of
    -- 27) is kept as a coarse region, as country codes are for the OMS customers
    select
        -- ids
        customer_id,
        customer_unique_id,

        -- strings
        customer_state,

        -- lineage
        _partition_key as partition_key,
        _ingested_at as ingested_at

    from source

)

select * from renamed
