-- The lake's "now": the latest moment any order or carrier event is known to have happened.
-- Ages, open exceptions and "stuck" are measured against it rather than the wall clock, so a
-- replayed or back-filled world gives the same answers as it did live. var('as_of') overrides it.
--
-- Beside it, the lake's data clock (data_through_at): the moment through which the lake has
-- heard from every source, the earliest of the sources' latest times. One source running ahead
-- (a future-dated carrier event) moves as_of but not data_through_at, and a source that
-- stopped holds it back: outcomes only that later data could tell (a KPI's maturity, whether an
-- exception could have been closed) are judged against it, never against as_of.
with

orders as (

    select max(ordered_at) as orders_through_at from {{ ref('stg_oms__orders') }}

),

events as (

    -- actual scans only: a carrier's estimate (an ocean ETA weeks ahead) is not something that
    -- happened, and once counted it pushed the clock days past the world, turning every open
    -- order late and every open exception past its SLA
    select max(event_at) as events_through_at
    from {{ ref('stg_carriers__carrier_events') }}
    where is_actual
        and event_at <= (select max(ingested_at) from {{ ref('stg_carriers__carrier_events') }})

),

sources as (

    select
        orders.orders_through_at,
        events.events_through_at,
        -- greatest/least skip nulls: a lake without carrier events yet runs on its orders
        greatest(orders.orders_through_at, events.events_through_at) as latest_at,
        least(orders.orders_through_at, events.events_through_at) as all_through_at
    from orders
    cross join events

)

select
    {% if var('as_of', none) %}
    cast('{{ var("as_of") }}' as timestamptz) as as_of,
    least(all_through_at, cast('{{ var("as_of") }}' as timestamptz)) as data_through_at,
    {% else %}
    latest_at as as_of,
    all_through_at as data_through_at,
    {% endif %}
    orders_through_at,
    events_through_at
from sources
