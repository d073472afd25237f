-- One row per customer, PII masked (no names, contacts or street addresses: see staging), with
-- what the lake knows about their orders.
with

crm as (

    select * from {{ ref('stg_crm__customers') }}

),

olist as (

    -- a person is customer_unique_id; Olist gives a new customer_id to each order
    select customer_unique_id, any_value(customer_state) as customer_state
    from {{ ref('stg_olist__customers') }}
    group by customer_unique_id

),

customers as (

    select
        customer_id,
        'oms' as source_system,
        tier,
        language,
        home_country_code,
        cast(null as varchar) as home_region_code,
        home_lat_approx,
        home_lon_approx,
        device_count,
        ip_address_count,
        is_marketing_opt_in,
        signed_up_at
    from crm

    union all

    select
        customer_unique_id,
        'olist',
        null,
        'pt',
        'BR',
        'BR-' || customer_state,
        null,
        null,
        null,
        null,
        null,
        null
    from olist

),

orders as (

    select
        customer_id,
        count(*) as order_count,
        sum(order_total) as lifetime_order_value,
        min(ordered_at) as first_ordered_at,
        max(ordered_at) as last_ordered_at
    from {{ ref('int_orders') }}
    group by customer_id

)

select
    -- ids
    customers.customer_id,
    customers.source_system,

    -- strings
    customers.tier,
    customers.language,
    customers.home_country_code,
    customers.home_region_code,

    -- numerics
    customers.home_lat_approx,
    customers.home_lon_approx,
    customers.device_count,
    customers.ip_address_count,
    cast(coalesce(orders.order_count, 0) as integer) as order_count,
    cast(coalesce(orders.lifetime_order_value, 0) as decimal(18, 2)) as lifetime_order_value,

    -- booleans
    customers.is_marketing_opt_in,

    -- timestamps
    customers.signed_up_at,
    orders.first_ordered_at,
    orders.last_ordered_at

from customers
left join orders on customers.customer_id = orders.customer_id
