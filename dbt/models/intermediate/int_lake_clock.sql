-- The lake's "now": the latest moment any order or carrier event is known to have happened.
-- Ages, open exceptions and "stuck" are measured against it rather than the wall clock, so a
-- replayed or back-filled world gives the same answers as it did live. var('as_of') overrides it.
with

latest as (

    select max(ordered_at) as latest_at from {{ ref('stg_oms__orders') }}
    union all
    select max(event_at) from {{ ref('stg_carriers__carrier_events') }}
    where event_at <= (select max(ingested_at) from {{ ref('stg_carriers__carrier_events') }})

)

select
    {% if var('as_of', none) %}
    cast('{{ var("as_of") }}' as timestamptz) as as_of
    {% else %}
    max(latest_at) as as_of
    {% endif %}
from latest
