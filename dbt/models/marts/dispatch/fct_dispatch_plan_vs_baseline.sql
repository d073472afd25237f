-- One row per wave: the optimised plan beside the baseline rule, and what it saved.
with

waves as (

    select * from {{ ref('fct_dispatch_waves') }}

),

optimised as (

    select * from waves where plan = 'optimised'

),

baseline as (

    select * from waves where plan = 'baseline'

)

select
    -- dates
    optimised.wave_date,

    -- numerics
    optimised.orders,
    optimised.cost_per_order_eur,
    baseline.cost_per_order_eur as baseline_cost_per_order_eur,
    baseline.cost_per_order_eur - optimised.cost_per_order_eur as saving_per_order_eur,
    optimised.cost_per_item_eur,
    baseline.cost_per_item_eur as baseline_cost_per_item_eur,
    optimised.cost_eur,
    baseline.cost_eur as baseline_cost_eur,
    optimised.kg_co2e_per_order,
    baseline.kg_co2e_per_order as baseline_kg_co2e_per_order,
    optimised.promise_hit_rate,
    baseline.promise_hit_rate as baseline_promise_hit_rate,
    optimised.next_day_orders,
    optimised.next_day_hit_rate,
    baseline.next_day_hit_rate as baseline_next_day_hit_rate,
    optimised.next_day_hit_rate_feasible,
    baseline.next_day_hit_rate_feasible as baseline_next_day_hit_rate_feasible,
    optimised.split_rate,
    baseline.split_rate as baseline_split_rate,
    optimised.deferred_orders,
    baseline.deferred_orders as baseline_deferred_orders,
    optimised.max_utilisation,
    baseline.max_utilisation as baseline_max_utilisation,
    optimised.green_share,
    optimised.proven_gap,
    optimised.solve_seconds,

    -- strings
    optimised.solver_status

from optimised
inner join baseline on optimised.wave_date = baseline.wave_date
