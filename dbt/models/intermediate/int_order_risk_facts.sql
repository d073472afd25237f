{#- A table, incremental by order: the features of one day read 90 days of these facts (the
    longest window), and as a view every read recomputed them for every order (five keyed
    hashes per order, the IP geolocation, the basket), twice per feature run -#}
{{
    config(
        materialized='incremental',
        unique_key='order_id',
        incremental_strategy='delete+insert',
        on_schema_change='append_new_columns',
    )
}}
-- What the risk model may know about an order at checkout, one row per OMS order: the entity
-- keys it counts behaviour by (customer, device, IP, IP network, card, shipping address), the
-- checkout's attributes, where the IP geolocates, the customer's home and signup, and the mix of
-- what was bought. Nothing here is known only after the order (no status, no fulfilment, no
-- label): the point-in-time features in ml/risk/features.py are built on this table alone.
--
-- Incremental by order (macros/incremental.sql): a run re-derives the orders with an order or
-- order-line record landed since its last run, and the orders whose customer's attributes in
-- the CRM differ from the ones stored (the customer file is a snapshot: compared by content,
-- not by when it landed). Changed SKU risk classes and IP ranges are reference data, taken in
-- by a full refresh (lake_full_refresh).
with

{% if is_incremental() %}
changed as (

    select order_id from {{ ref('stg_oms__orders') }} where ingested_at > {{ ingested_since() }}
    union
    select order_id from {{ ref('stg_oms__order_lines') }}
    where ingested_at > {{ ingested_since() }}
    union
    select stored.order_id
    from {{ this }} as stored
    inner join {{ ref('stg_crm__customers') }} as customers
        on stored.customer_key = customers.customer_id
    where stored.home_country_code is distinct from customers.home_country_code
        or stored.home_lat is distinct from customers.home_lat_approx
        or stored.home_lon is distinct from customers.home_lon_approx
        or stored.signed_up_at is distinct from customers.signed_up_at
        or stored.customer_tier is distinct from customers.tier

),
{% endif %}

orders as (

    select * from {{ ref('stg_oms__orders') }}
    {{ only_changed('order_id') }}

),

ip_networks as (

    select * from {{ ref('stg_oms__order_ip_networks') }}
    {{ only_changed('order_id') }}

),

customers as (

    select * from {{ ref('stg_crm__customers') }}

),

ip_ranges as (

    select ip_from, ip_to, country_code, lat, lon from {{ ref('stg_reference__ip_ranges') }}

),

countries as (

    select country_code, timezone from {{ ref('countries') }}

),

lines as (

    select * from {{ ref('stg_oms__order_lines') }}
    {{ only_changed('order_id') }}

),

skus as (

    select sku_id, category, risk_class from {{ ref('stg_reference__skus') }}

),

basket as (

    select
        lines.order_id,
        count(*) as line_count,
        sum(lines.quantity) as unit_count,
        max(lines.unit_price) as max_unit_price,
        count(distinct skus.category) as category_count,
        sum(lines.line_amount) as basket_amount,
        sum(case when skus.risk_class = 'high' then lines.line_amount else 0 end)
            as high_risk_amount,
        sum(case when skus.risk_class = 'medium' then lines.line_amount else 0 end)
            as medium_risk_amount,
        sum(lines.discount) as discount_amount
    from lines
    left join skus on lines.sku_id = skus.sku_id
    group by lines.order_id

),

-- the network's range: ranges are sorted and disjoint, so the last one starting at or below
-- the address is the only candidate (ASOF), and it must also end at or above it. The /24 in
-- clear exists only here (an ephemeral input): what is kept is where it geolocates
ip_geo as (

    select
        ip_networks.order_id,
        ip_ranges.country_code,
        ip_ranges.lat,
        ip_ranges.lon
    from ip_networks
    asof join ip_ranges on ip_networks.ip_network_int >= ip_ranges.ip_from
    where ip_networks.ip_network_int <= ip_ranges.ip_to

),

final as (

    select
        -- ids and entity keys (hashes: the raw identifiers never leave the raw layer)
        orders.order_id,
        orders.customer_id as customer_key,
        orders.device_id_hash as device_key,
        orders.ip_address_hash as ip_key,
        orders.ip_network_hash as ip_network_key,
        orders.payment_instrument_id_hash as card_key,
        orders.shipping_address_hash as ship_address_key,

        -- checkout attributes
        orders.channel,
        orders.payment_method,
        orders.promise_type,
        cast(null as varchar) as acquisition_source,
        case
            when orders.user_agent ilike '%edg/%' then 'edge'
            when orders.user_agent ilike '%firefox/%' then 'firefox'
            when orders.user_agent ilike '%chrome/%' then 'chrome'
            when orders.user_agent ilike '%safari/%' then 'safari'
            when orders.user_agent is null then null
            else 'other'
        end as browser_family,
        case
            when orders.user_agent is null then null
            when regexp_matches(orders.user_agent, '(?i)iphone|android|mobile') then 'mobile'
            when regexp_matches(orders.user_agent, '(?i)windows|macintosh|x11') then 'desktop'
            else 'app_or_other'
        end as device_class,
        orders.has_promo_code,
        orders.billing_differs_from_shipping,
        cast(orders.order_total as double) as order_total,
        cast(orders.shipping_fee as double) as shipping_fee,

        -- geography (approximate coordinates, two decimals)
        ip_geo.country_code as ip_country_code,
        orders.shipping_country_code,
        orders.billing_country_code,
        customers.home_country_code,
        ip_geo.lat as ip_lat,
        ip_geo.lon as ip_lon,
        orders.shipping_lat_approx as shipping_lat,
        orders.shipping_lon_approx as shipping_lon,
        customers.home_lat_approx as home_lat,
        customers.home_lon_approx as home_lon,

        -- the customer as known at signup (static attributes, nothing that grows afterwards)
        customers.signed_up_at,
        customers.tier as customer_tier,
        cast(null as double) as customer_age_years,

        -- basket
        coalesce(basket.line_count, 0) as line_count,
        coalesce(basket.unit_count, 0) as unit_count,
        cast(basket.max_unit_price as double) as max_unit_price,
        coalesce(basket.category_count, 0) as category_count,
        cast(
            basket.high_risk_amount / nullif(basket.basket_amount, 0) as double
        ) as high_risk_value_share,
        cast(
            basket.medium_risk_amount / nullif(basket.basket_amount, 0) as double
        ) as medium_risk_value_share,
        cast(
            basket.discount_amount / nullif(basket.basket_amount + basket.discount_amount, 0)
            as double
        ) as discount_share,

        -- when, in UTC and on the shopper's clock (the destination's time zone)
        orders.ordered_at,
        cast(extract(hour from timezone(coalesce(countries.timezone, 'UTC'), orders.ordered_at))
            as integer) as local_hour,
        cast(isodow(timezone(coalesce(countries.timezone, 'UTC'), orders.ordered_at))
            as integer) as local_dow,
        orders.partition_key,

        -- lineage
        {{ run_started() }} as refreshed_at

    from orders
    left join customers on orders.customer_id = customers.customer_id
    left join ip_geo on orders.order_id = ip_geo.order_id
    left join basket on orders.order_id = basket.order_id
    left join countries on orders.shipping_country_code = countries.country_code

)

select * from final
