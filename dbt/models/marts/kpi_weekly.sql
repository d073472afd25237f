-- KPIs per ISO week (starting Monday), source system, channel, warehouse and last-mile carrier:
-- the daily KPI mart's facts summed by week, rates recomputed from the sums. A small table
-- (weeks x dimensions) rebuilt whole from kpi_daily, which is the incremental one.
{{ kpi_mart(
    "cast(date_trunc('week', kpi_date) as date)", 'week_start', 'kpi_weekly_id', ref('kpi_daily')
) }}
