-- The additive facts behind every KPI, one row per order (dated by its order day) and one per
-- exception opened or resolved (dated by that day), all carrying the same dimensions so the
-- KPI marts can sum them at any grain and compute rates from sums (never average rates).
with

orders as (

    select * from {{ ref('fct_orders') }}

),

exceptions as (

    select * from {{ ref('fct_order_exceptions') }}

),

order_facts as (

    select
        'order/' || order_id as fact_id,
        order_date as kpi_date,
        source_system,
        channel,
        coalesce(primary_warehouse_id, 'none') as warehouse_id,
        coalesce(last_mile_carrier_id, 'none') as carrier_id,
        1 as orders,
        ordered_units as units_ordered,
        order_total as order_value,
        case when is_cancelled then 1 else 0 end as cancelled_orders,
        case when is_delivered then 1 else 0 end as delivered_orders,
        case when is_on_time is not null then 1 else 0 end as due_orders,
        case when is_on_time then 1 else 0 end as on_time_orders,
        case when is_next_day_promise and is_on_time is not null then 1 else 0 end
            as next_day_due_orders,
        case when is_next_day_promise and is_on_time then 1 else 0 end as next_day_on_time_orders,
        case when is_delivered or is_lost then 1 else 0 end as closed_orders,
        case when is_perfect_order then 1 else 0 end as perfect_orders,
        case when has_fulfilment_error then 1 else 0 end as error_orders,
        -- fill rate: units shipped of units ordered, except orders the customer, the payment or
        -- the risk team cancelled (those were never meant to be filled)
        case
            when cancellation_reason in ('customer_request', 'payment_failed', 'fraud_suspected')
                then 0
            else ordered_units
        end as units_to_fill,
        case
            when cancellation_reason in ('customer_request', 'payment_failed', 'fraud_suspected')
                then 0
            else least(shipped_units, ordered_units)
        end as units_filled,
        case when is_green_option then 1 else 0 end as green_orders,
        case when transport_cost_eur is not null then 1 else 0 end as shipped_orders,
        case when transport_cost_eur is not null then shipped_units else 0 end as units_shipped,
        coalesce(transport_cost_eur, 0) as transport_cost_eur,
        coalesce(kg_co2e, 0) as kg_co2e,
        0 as exceptions_opened,
        0 as exceptions_resolved,
        case when is_recovered then 1 else 0 end as recovered_orders,
        case when is_recovered then order_total else 0 end as recovered_order_value,
        review_count as reviews,
        case when avg_rating is not null then avg_rating * review_count else 0 end as rating_sum,
        case when avg_rating >= 4 then review_count else 0 end as promoter_reviews,
        case when avg_rating <= 2 then review_count else 0 end as detractor_reviews
    from orders

),

exception_facts as (

    select
        'opened/' || exception_id as fact_id,
        opened_date as kpi_date,
        source_system,
        channel,
        coalesce(warehouse_id, 'none'),
        coalesce(carrier_id, 'none'),
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        1 as exceptions_opened,
        0 as exceptions_resolved,
        0, 0, 0, 0, 0, 0
    from exceptions
    union all
    select
        'resolved/' || exception_id,
        resolved_date,
        source_system,
        channel,
        coalesce(warehouse_id, 'none'),
        coalesce(carrier_id, 'none'),
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0,
        1,
        0, 0, 0, 0, 0, 0
    from exceptions
    where resolved_date is not null

)

select * from order_facts
union all
select * from exception_facts
