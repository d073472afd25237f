{#-
    The KPI definitions, in one place, as ratios of the additive facts of int_kpi_facts. Both
    KPI marts (daily, weekly) select the sums and then these rates, so a rate at any roll-up
    is recomputed from sums, never averaged. A rate is null when its denominator is 0.
    The outcome rates (on time, next-day hit, fill, cancellation) count matured orders only
    (int_kpi_facts states the maturity rule); is_provisional marks a row with more than 1 %
    (var kpi_provisional_open_share) of its orders still open; open_orders says how many.
-#}

{% macro kpi_sums() -%}
    cast(sum(orders) as bigint) as orders,
    cast(sum(units_ordered) as bigint) as units_ordered,
    cast(sum(order_value) as decimal(18, 2)) as order_value,
    cast(sum(cancelled_orders) as bigint) as cancelled_orders,
    cast(sum(delivered_orders) as bigint) as delivered_orders,
    cast(sum(due_orders) as bigint) as due_orders,
    cast(sum(on_time_orders) as bigint) as on_time_orders,
    cast(sum(next_day_due_orders) as bigint) as next_day_due_orders,
    cast(sum(next_day_on_time_orders) as bigint) as next_day_on_time_orders,
    cast(sum(closed_orders) as bigint) as closed_orders,
    cast(sum(perfect_orders) as bigint) as perfect_orders,
    cast(sum(error_orders) as bigint) as error_orders,
    cast(sum(units_to_fill) as bigint) as units_to_fill,
    cast(sum(units_filled) as bigint) as units_filled,
    cast(sum(green_orders) as bigint) as green_orders,
    cast(sum(shipped_orders) as bigint) as shipped_orders,
    cast(sum(units_shipped) as bigint) as units_shipped,
    cast(sum(transport_cost_eur) as decimal(18, 2)) as transport_cost_eur,
    sum(kg_co2e) as kg_co2e,
    cast(sum(exceptions_opened) as bigint) as exceptions_opened,
    cast(sum(exceptions_resolved) as bigint) as exceptions_resolved,
    cast(sum(recovered_orders) as bigint) as recovered_orders,
    cast(sum(recovered_order_value) as decimal(18, 2)) as recovered_order_value,
    cast(sum(reviews) as bigint) as reviews,
    cast(sum(rating_sum) as bigint) as rating_sum,
    cast(sum(promoter_reviews) as bigint) as promoter_reviews,
    cast(sum(detractor_reviews) as bigint) as detractor_reviews,
    cast(sum(matured_orders) as bigint) as matured_orders,
    cast(sum(open_orders) as bigint) as open_orders
{%- endmacro %}


{% macro kpi_rates() -%}
    on_time_orders / nullif(due_orders, 0) as on_time_delivery_rate,
    perfect_orders / nullif(closed_orders, 0) as perfect_order_rate,
    error_orders / nullif(closed_orders, 0) as error_rate,
    units_filled / nullif(units_to_fill, 0) as fill_rate,
    next_day_on_time_orders / nullif(next_day_due_orders, 0) as next_day_promise_hit_rate,
    cancelled_orders / nullif(matured_orders, 0) as cancellation_rate,
    cast(transport_cost_eur as double) / nullif(shipped_orders, 0) as cost_per_order_eur,
    cast(transport_cost_eur as double) / nullif(units_shipped, 0) as cost_per_item_eur,
    kg_co2e / nullif(shipped_orders, 0) as kg_co2e_per_order,
    kg_co2e / nullif(units_shipped, 0) as kg_co2e_per_item,
    green_orders / nullif(orders, 0) as green_option_uptake,
    rating_sum / nullif(reviews, 0) as avg_rating,
    -- net sentiment from 1-5 ratings, -100..100: share of 4-5 minus share of 1-2
    100.0 * (promoter_reviews - detractor_reviews) / nullif(reviews, 0) as sentiment_index,
    -- provisional: more than var kpi_provisional_open_share (1 %) of the row's orders are still
    -- open, so its outcome rates may still move by more than about a point
    open_orders > {{ var('kpi_provisional_open_share', 0.01) }} * orders as is_provisional,
    open_orders / nullif(orders, 0) as open_order_share
{%- endmacro %}


{#- One KPI mart at a time grain: the facts summed per period and dimension, then the rates.
    period_expr turns kpi_date into the period (kpi_date itself, or its week), period_column
    names it, id_column names the grain's hash key. facts: the relation summed (int_kpi_facts,
    or a finer KPI mart: its sums have the facts' names); prelude: CTEs the filter uses;
    where: a further filter on the facts; extra: further columns of the mart; after: what
    follows the final select (kpi_daily's markers, macros/incremental.sql). -#}
{% macro kpi_mart(period_expr, period_column, id_column, facts, prelude='', where='', extra='', after='') -%}
with

{{ prelude }}

sums as (

    select
        {{ period_expr }} as {{ period_column }},
        source_system,
        channel,
        warehouse_id,
        carrier_id,
        {{ kpi_sums() }}
    from {{ facts }}
    where kpi_date is not null
    {{ where }}
    group by all

)

select
    md5(
        cast({{ period_column }} as varchar) || '|' || source_system || '|' || channel || '|'
        || warehouse_id || '|' || carrier_id
    ) as {{ id_column }},
    *,
    {{ kpi_rates() }}
    {{- extra }}
from sums
{{ after }}
{%- endmacro %}
