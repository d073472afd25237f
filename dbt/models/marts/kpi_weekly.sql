-- KPIs per ISO week (starting Monday), source system, channel, warehouse and last-mile carrier:
-- the daily facts summed by week, rates recomputed from the sums.
with

sums as (

    select
        cast(date_trunc('week', kpi_date) as date) as week_start,
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
        cast(week_start as varchar) || '|' || source_system || '|' || channel || '|'
        || warehouse_id || '|' || carrier_id
    ) as kpi_weekly_id,
    *,
    {{ kpi_rates() }}
from sums
