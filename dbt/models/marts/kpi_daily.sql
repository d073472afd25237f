{#- append_new_columns: a lake built before refreshed_at existed gains the column; its
    rows, refreshed_at null, leave no watermark, so that first run re-derives every key -#}
{{
    config(
        materialized='incremental',
        unique_key='kpi_date',
        incremental_strategy='delete+insert',
        on_schema_change='append_new_columns',
        post_hook="{{ delete_markers('kpi_daily_id') }}",
    )
}}
-- KPIs per day, source system, channel, warehouse (the order's primary one) and last-mile
-- carrier: the additive facts and the rates computed from them (macro kpi_rates). Roll up by
-- summing the facts and recomputing the rates, never by averaging rates.
--
-- Incremental by day (macros/incremental.sql): a run re-derives the order days of the orders
-- fct_orders re-derived since its last run (int_kpi_facts.refreshed_at), every day whose
-- exception counts no longer match the episodes (new, resolved, moved or gone), and every day
-- with orders still open (maturity moves with the data clock).
{% set incremental = is_incremental() and not var('as_of', none) %}
{% set prelude %}
{% if incremental %}
exception_counts as (

    select
        kpi_date,
        source_system,
        channel,
        warehouse_id,
        carrier_id,
        sum(exceptions_opened) as exceptions_opened,
        sum(exceptions_resolved) as exceptions_resolved
    from {{ ref('int_kpi_facts') }}
    where fact_kind <> 'order' and kpi_date is not null
    group by all

),

built_exception_counts as (

    select kpi_date, source_system, channel, warehouse_id, carrier_id, exceptions_opened,
        exceptions_resolved
    from {{ this }}
    where exceptions_opened > 0 or exceptions_resolved > 0

),

changed_dates as (

    -- an order's facts: its order day when fct_orders re-derived it (an exception's facts are
    -- counts only, compared below: an open episode re-derived each run moves no day)
    select kpi_date from {{ ref('int_kpi_facts') }}
    where fact_kind = 'order' and refreshed_at > {{ refreshed_since() }}
    union
    select kpi_date from {{ this }} where open_orders > 0
    union
    select coalesce(counted.kpi_date, built.kpi_date)
    from exception_counts as counted
    full outer join built_exception_counts as built
        on counted.kpi_date = built.kpi_date
        and counted.source_system = built.source_system
        and counted.channel = built.channel
        and counted.warehouse_id = built.warehouse_id
        and counted.carrier_id = built.carrier_id
    -- a count on one side only, or different (no count is negative)
    where coalesce(counted.exceptions_opened, -1) <> coalesce(built.exceptions_opened, -1)
        or coalesce(counted.exceptions_resolved, -1) <> coalesce(built.exceptions_resolved, -1)

),
{% endif %}
{% endset %}
{{ kpi_mart(
    'kpi_date', 'kpi_date', 'kpi_daily_id', ref('int_kpi_facts'),
    prelude=prelude,
    where='and kpi_date in (select kpi_date from changed_dates)' if incremental else '',
    extra=',\n    ' ~ run_started() ~ ' as refreshed_at',
    after=replaced_keys('sums', 'kpi_date', 'changed_dates'),
) }}
