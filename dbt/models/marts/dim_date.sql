-- One row per calendar day the lake's orders span (plus a year of runway for promises and
-- late deliveries), with the ISO week the weekly KPIs use.
with

bounds as (

    select
        cast(min(ordered_at) as date) as first_day,
        cast(max(ordered_at) as date) + 365 as last_day
    from {{ ref('int_orders') }}

),

days as (

    select cast(unnest(generate_series(
        cast(first_day as timestamp), cast(last_day as timestamp), interval 1 day
    )) as date) as date_day
    from bounds

)

select
    -- ids
    date_day,

    -- strings
    strftime(date_day, '%A') as day_name,
    strftime(date_day, '%B') as month_name,
    strftime(date_day, '%G-W%V') as iso_week,

    -- numerics
    cast(year(date_day) as integer) as year,
    cast(quarter(date_day) as integer) as quarter,
    cast(month(date_day) as integer) as month,
    cast(isodow(date_day) as integer) as iso_day_of_week,

    -- booleans
    isodow(date_day) >= 6 as is_weekend,

    -- dates
    cast(date_trunc('week', date_day) as date) as week_start,
    cast(date_trunc('month', date_day) as date) as month_start

from days
