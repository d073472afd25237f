-- Every order of every source system in one shape, with its promise resolved to a moment:
-- the end of the promised day in the destination's time zone.
with

oms as (

    select * from {{ ref('stg_oms__orders') }}

),

olist as (

    select * from {{ ref('stg_olist__orders') }}

),

olist_customers as (

    select customer_id, customer_unique_id from {{ ref('stg_olist__customers') }}

),

olist_amounts as (

    select
        order_id,
        sum(unit_price) + sum(freight_value) as order_total,
        sum(freight_value) as shipping_fee
    from {{ ref('stg_olist__order_items') }}
    group by order_id

),

countries as (

    select * from {{ ref('countries') }}

),

unioned as (

    select
        order_id,
        'oms' as source_system,
        customer_id,
        channel,
        payment_method,
        currency,
        promise_type,
        shipping_country_code,
        billing_country_code,
        is_cross_border,
        has_promo_code,
        order_total,
        shipping_fee,
        ordered_at,
        promised_delivery_date,
        -- milestones that only some source systems report themselves
        -- card, wallet, BNPL and gift card are captured at checkout; bank transfers and cash
        -- on delivery are paid later, and no payment feed reports when yet
        case
            when payment_method in ('card', 'paypal', 'bnpl', 'gift_card') then ordered_at
        end as source_paid_at,
        cast(null as timestamptz) as source_shipped_at,
        cast(null as timestamptz) as source_delivered_at,
        cast(null as varchar) as source_status,
        partition_key
    from oms

    union all

    -- Olist: a Brazilian marketplace; the person behind an order is customer_unique_id (its
    -- customer_id is one per order), payments are not in the extract, every order is standard
    select
        olist.order_id,
        'olist',
        olist_customers.customer_unique_id,
        'marketplace',
        'unknown',
        'BRL',
        'standard',
        'BR',
        'BR',
        false,
        false,
        -- 111 unavailable or cancelled Olist orders have no items: nothing was charged
        cast(coalesce(olist_amounts.order_total, 0) as decimal(18, 2)),
        cast(coalesce(olist_amounts.shipping_fee, 0) as decimal(18, 2)),
        olist.ordered_at,
        olist.promised_delivery_date,
        olist.approved_at,
        olist.handed_to_carrier_at,
        olist.delivered_at,
        olist.order_status,
        olist.partition_key
    from olist
    left join olist_customers on olist.customer_id = olist_customers.customer_id
    left join olist_amounts on olist.order_id = olist_amounts.order_id

),

resolved as (

    select
        unioned.*,
        coalesce(countries.timezone, 'UTC') as destination_timezone,
        coalesce(countries.is_eu, false) as is_destination_eu,
        -- the promise holds until the end of the promised local day
        cast(
            timezone(
                coalesce(countries.timezone, 'UTC'),
                cast(promised_delivery_date + interval 1 day as timestamp)
            ) as timestamptz
        ) as promised_by_at
    from unioned
    left join countries
        on unioned.shipping_country_code = countries.country_code

)

select * from resolved
