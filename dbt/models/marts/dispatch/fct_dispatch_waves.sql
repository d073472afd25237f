-- One row per dispatch wave and plan: the optimised allocation and the baseline rule ("nearest
-- warehouse with stock, ship each line as it comes") measured the same way (ml/dispatch).
with

waves as (

    select * from {{ ref('stg_ml__dispatch_waves') }}

)

select
    -- ids
    strftime(wave_date, '%Y-%m-%d') || '/' || plan as dispatch_wave_id,

    -- strings
    plan,
    solver_status,
    utilisation_json,

    -- numerics
    orders,
    lines,
    units,
    shipments,
    cost_eur,
    cost_per_order_eur,
    cost_per_item_eur,
    kg_co2e_per_order,
    promise_hit_rate,
    next_day_orders,
    next_day_hit_rate,
    next_day_hit_rate_feasible,
    split_rate,
    deferred_orders,
    unfilled_lines,
    green_share,
    max_utilisation,
    solve_seconds,
    proven_gap,
    subproblems,

    -- dates
    wave_date,

    -- timestamps
    planned_at

from waves
