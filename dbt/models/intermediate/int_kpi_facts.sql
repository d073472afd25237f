-- The additive facts behind every KPI, one row per order (dated by its order day) and one per
-- exception opened or resolved (dated by that day), all carrying the same dimensions so the
-- KPI marts can sum them at any grain and compute rates from sums (never average rates). Each
-- fact carries its kind (order, opened, resolved) and when its mart row was last derived
-- (refreshed_at), which kpi_daily's incremental runs read.
--
-- Maturity: an order's outcome is known once it is cancelled, delivered or lost, or once the
-- end of its promised day lies more than var('kpi_maturity_hours') (72 h: the longest a
-- carrier's delivery scan reaches the lake late) before the lake's data clock
-- (int_lake_clock.data_through_at). Until then it is open: the outcome KPIs (on time, next-day
-- hit, fill rate, cancellation; perfect order and errors count delivered or lost orders only)
-- leave it out of their numerators and denominators, and a KPI row with more than 1 % of its
-- orders open is provisional (macro kpi_rates). An order in transit is never counted as late
-- before its outcome is known.
{%- set maturity_hours = var('kpi_maturity_hours', 72) %}
with

orders as (

    select * from {{ ref('fct_orders') }}

),

exceptions as (

    select * from {{ ref('fct_order_exceptions') }}

),

clock as (

    select * from {{ ref('int_lake_clock') }}

),

matured as (

    select
        orders.*,
        coalesce(is_cancelled or is_delivered or is_lost, false)
        or coalesce(
            coalesce(promised_by_at, ordered_at) + to_hours(cast({{ maturity_hours }} as bigint))
                <= coalesce(clock.data_through_at, clock.as_of),
            false
        ) as is_matured
    from orders
    cross join clock

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
        -- on time over matured orders only: an order still open is not yet late
        case when is_matured and is_on_time is not null then 1 else 0 end as due_orders,
        case when is_matured and is_on_time then 1 else 0 end as on_time_orders,
        case when is_matured and is_next_day_promise and is_on_time is not null then 1 else 0 end
            as next_day_due_orders,
        case when is_matured and is_next_day_promise and is_on_time then 1 else 0 end
            as next_day_on_time_orders,
        case when is_delivered or is_lost then 1 else 0 end as closed_orders,
        case when is_perfect_order then 1 else 0 end as perfect_orders,
        case when has_fulfilment_error then 1 else 0 end as error_orders,
        -- fill rate: units shipped of units ordered of matured orders, except orders the
        -- customer, the payment or the risk team cancelled (never meant to be filled)
        case
            when not is_matured then 0
            when cancellation_reason in ('customer_request', 'payment_failed', 'fraud_suspected')
                then 0
            else ordered_units
        end as units_to_fill,
        case
            when not is_matured then 0
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
        case when avg_rating <= 2 then review_count else 0 end as detractor_reviews,
        case when is_matured then 1 else 0 end as matured_orders,
        case when is_matured then 0 else 1 end as open_orders,
        'order' as fact_kind,
        refreshed_at
    from matured

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
        0, 0, 0, 0, 0, 0,
        0 as matured_orders,
        0 as open_orders,
        'opened' as fact_kind,
        refreshed_at
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
        0, 0, 0, 0, 0, 0,
        0,
        0,
        'resolved',
        refreshed_at
    from exceptions
    where resolved_date is not null

)

select * from order_facts
union all
select * from exception_facts
