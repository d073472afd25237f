-- Each wave's KPIs per plan (optimised, baseline) as the dispatch_plan asset wrote them;
-- empty until the first planning run.
{%- set columns = [
    ['wave_date', 'date'],
    ['plan', 'varchar'],
    ['orders', 'integer'],
    ['lines', 'integer'],
    ['units', 'integer'],
    ['shipments', 'integer'],
    ['cost_eur', 'double'],
    ['cost_per_order_eur', 'double'],
    ['cost_per_item_eur', 'double'],
    ['kg_co2e_per_order', 'double'],
    ['promise_hit_rate', 'double'],
    ['next_day_orders', 'integer'],
    ['next_day_hit_rate', 'double'],
    ['next_day_hit_rate_feasible', 'double'],
    ['split_rate', 'double'],
    ['deferred_orders', 'integer'],
    ['unfilled_lines', 'integer'],
    ['green_share', 'double'],
    ['max_utilisation', 'double'],
    ['solver_status', 'varchar'],
    ['solve_seconds', 'double'],
    ['proven_gap', 'double'],
    ['subproblems', 'integer'],
    ['utilisation_json', 'varchar'],
    ['planned_at', 'timestamptz']
] %}

with

source as (

    {{ source_or_empty('ml', 'dispatch_waves', columns) }}

),

renamed as (

    select
        cast(wave_date as date) as wave_date,
        cast(plan as varchar) as plan,
        cast(orders as integer) as orders,
        cast(lines as integer) as lines,
        cast(units as integer) as units,
        cast(shipments as integer) as shipments,
        cast(cost_eur as double) as cost_eur,
        cast(cost_per_order_eur as double) as cost_per_order_eur,
        cast(cost_per_item_eur as double) as cost_per_item_eur,
        cast(kg_co2e_per_order as double) as kg_co2e_per_order,
        cast(promise_hit_rate as double) as promise_hit_rate,
        cast(next_day_orders as integer) as next_day_orders,
        cast(next_day_hit_rate as double) as next_day_hit_rate,
        cast(next_day_hit_rate_feasible as double) as next_day_hit_rate_feasible,
        cast(split_rate as double) as split_rate,
        cast(deferred_orders as integer) as deferred_orders,
        cast(unfilled_lines as integer) as unfilled_lines,
        cast(green_share as double) as green_share,
        cast(max_utilisation as double) as max_utilisation,
        cast(solver_status as varchar) as solver_status,
        cast(solve_seconds as double) as solve_seconds,
        cast(proven_gap as double) as proven_gap,
        cast(subproblems as integer) as subproblems,
        cast(utilisation_json as varchar) as utilisation_json,
        cast(planned_at as timestamptz) as planned_at
    from source

)

select * from renamed
