-- Ephemeral on purpose: the checkout IP's /24 network in clear exists only inside the query
-- that geolocates it (int_order_risk_facts), never as a table or view of the lake, and
-- never beside a hash of the same address (docs/pii.md).
{{ config(materialized='ephemeral') }}

with

source as (

    select * from {{ source('oms', 'orders') }}

),

renamed as (

    select
        -- ids
        order_id,

        -- numerics
        {{ ipv4_network_int('ip_address') }} as ip_network_int

    from source

)

select * from renamed
