-- KPIs per ISO week (starting Monday), source system, channel, warehouse and last-mile carrier:
-- the daily facts summed by week, rates recomputed from the sums.
{{ kpi_mart("cast(date_trunc('week', kpi_date) as date)", 'week_start', 'kpi_weekly_id') }}
