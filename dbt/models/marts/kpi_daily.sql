-- KPIs per day, source system, channel, warehouse (the order's primary one) and last-mile
-- carrier: the additive facts and the rates computed from them (macro kpi_rates). Roll up by
-- summing the facts and recomputing the rates, never by averaging rates.
with

sums as (

    select
        kpi_date,
        source_system,
        channel,
        warehouse_id,
        carrier_id,
        {{ kpi_sums() }}
    from {{ ref('int_kpi_facts') }}
    where kpi_date is not null
    group by all

)

select
    md5(
        cast(kpi_date as varchar) || '|' || source_system || '|' || channel || '|'
        || warehouse_id || '|' || carrier_id
    ) as kpi_daily_id,
    *,
    {{ kpi_rates() }}
from sums
