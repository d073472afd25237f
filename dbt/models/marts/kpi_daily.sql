-- KPIs per day, source system, channel, warehouse (the order's primary one) and last-mile
-- carrier: the additive facts and the rates computed from them (macro kpi_rates). Roll up by
-- summing the facts and recomputing the rates, never by averaging rates.
{{ kpi_mart('kpi_date', 'kpi_date', 'kpi_daily_id') }}
