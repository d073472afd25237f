with

source as (

    select * from {{ source('crm', 'customers') }}

),

renamed as (

    -- full_name, email, phone, home street, city and postal code are pii and not selected
    select
        -- ids
        customer_id,

        -- strings
        tier,
        language,
        home_address_country_code as home_country_code,

        -- numerics
        {{ approx_coordinate('home_address_latitude') }} as home_lat_approx,
        {{ approx_coordinate('home_address_longitude') }} as home_lon_approx,
        coalesce(len(devices), 0) as device_count,
        coalesce(len(ip_addresses), 0) as ip_address_count,

        -- booleans
        marketing_opt_in as is_marketing_opt_in,

        -- timestamps
        cast(signup_at as timestamptz) as signed_up_at,

        -- lineage
        _partition_key as partition_key,
        _ingested_at as ingested_at

    from source

)

select * from renamed
