with

source as (

    select * from {{ source('crm', 'reviews') }}

),

renamed as (

    -- comment is free text that may hold personal data: only whether there is one is kept
    select
        -- ids
        review_id,
        order_id,
        customer_id,

        -- strings
        contact_channel,
        contact_reason,

        -- numerics
        cast(rating as integer) as rating,

        -- booleans
        coalesce(trim(comment), '') <> '' as has_comment,
        contact_reason = 'where_is_my_order' as is_wismo,

        -- timestamps
        cast(created_at as timestamptz) as created_at,

        -- lineage
        _partition_key as partition_key,
        _ingested_at as ingested_at

    from source

)

select * from renamed
