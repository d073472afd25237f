with

source as (

    select * from {{ source('oms', 'orders') }}

),

renamed as (

    select
        -- ids
        order_id,
        customer_id,
        {{ hash_pii('payment_instrument_id') }} as payment_instrument_id_hash,
        {{ hash_pii('device_id') }} as device_id_hash,
        {{ hash_pii('ip_address') }} as ip_address_hash,
        -- the /24 network as an entity, keyed too: a network in clear beside the address's hash
        -- would leave 256 guesses (geolocation reads stg_oms__order_ip_networks instead)
        {{ hash_pii(ipv4_network_text('ip_address')) }} as ip_network_hash,
        -- the shipping address as an entity (how many cards and accounts ship to it), normalised
        -- so that case and spacing do not make a new address
        {{ hash_pii("upper(regexp_replace(concat_ws('|', shipping_address_street, shipping_address_postal_code, shipping_address_country_code), '\\s+', '', 'g'))") }}
            as shipping_address_hash,

        -- strings
        channel,
        payment_method,
        currency,
        promise_type,
        promo_code,
        user_agent,
        billing_address_country_code as billing_country_code,
        shipping_address_country_code as shipping_country_code,

        -- numerics
        cast(order_total as decimal(18, 2)) as order_total,
        cast(shipping_fee as decimal(18, 2)) as shipping_fee,
        {{ approx_coordinate('billing_address_latitude') }} as billing_lat_approx,
        {{ approx_coordinate('billing_address_longitude') }} as billing_lon_approx,
        {{ approx_coordinate('shipping_address_latitude') }} as shipping_lat_approx,
        {{ approx_coordinate('shipping_address_longitude') }} as shipping_lon_approx,

        -- booleans (postal codes are compared here, before they are dropped)
        billing_address_country_code is distinct from shipping_address_country_code
            or upper(replace(billing_address_postal_code, ' ', ''))
                is distinct from upper(replace(shipping_address_postal_code, ' ', ''))
            as billing_differs_from_shipping,
        billing_address_country_code is distinct from shipping_address_country_code
            as is_cross_border,
        promo_code is not null as has_promo_code,

        -- dates and timestamps
        cast(order_ts as timestamptz) as ordered_at,
        cast(promised_delivery_date as date) as promised_delivery_date,

        -- lineage
        _partition_key as partition_key,
        _ingested_at as ingested_at

    from source

)

select * from renamed
