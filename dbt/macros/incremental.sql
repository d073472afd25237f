{#
    The incremental marts (fct_orders, fct_shipment_legs, fct_order_timeline,
    fct_order_exceptions, the KPI marts) re-derive, on each run, every key whose inputs changed
    since their last run, plus the keys whose rows the lake's clock alone can change (an order
    not yet due turns late without any new record). They replace those keys whole
    (delete+insert), so a re-derived key reads all of its inputs, never only the new rows:
    a late or re-sent record lands in its place, and a full refresh gives the same rows
    (tests/test_incremental_marts.py).

    Each row carries refreshed_at, the start of the dbt run that derived it. A mart's
    watermark is its latest refreshed_at: the previous run's start.
      - from its inputs (int_order_changes, the change feed), a key changed when a record of it
        was ingested after the watermark less var('incremental_lookback_minutes') (default 10, or
        ORDERTOWER_INCREMENTAL_LOOKBACK_MINUTES) (a writer that stamped its records
        before the previous run started and committed them after it read: the live stream);
      - from an upstream incremental mart, a key changed when that mart re-derived it after the
        watermark (same lake, same clock; no lookback needed).
    Not followed incrementally (a full refresh re-derives them: the lake_full_refresh job, weekly
    by lake_full_refresh_schedule):
    changed reference data and seeds (SKU weights, countries, emission factors, rates, the
    exception policy), and records withdrawn from a source. var('as_of') (a replay at another
    moment of the lake's clock) re-derives every key.
#}

{#- The start of this dbt run, UTC: what refreshed_at records for every row it derives. -#}
{% macro run_started() -%}
    cast('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S.%f") }}+00' as timestamptz)
{%- endmacro %}

{#- The mart's watermark: when the run that last derived any of its rows started. -#}
{% macro refreshed_since() -%}
    {#- a table built before the column existed has no watermark: every key is re-derived -#}
    {%- set columns = adapter.get_columns_in_relation(this) | map(attribute='name') | list
        if execute else ['refreshed_at'] -%}
    {%- if 'refreshed_at' in columns -%}
    (select coalesce(max(refreshed_at), timestamptz '1970-01-01 00:00:00+00') from {{ this }})
    {%- else -%}
    timestamptz '1970-01-01 00:00:00+00'
    {%- endif -%}
{%- endmacro %}

{#- The watermark for staging inputs: ingested after it means not yet seen by the mart. -#}
{% macro ingested_since() -%}
    {%- set lookback = (var('incremental_lookback_minutes', env_var('ORDERTOWER_INCREMENTAL_LOOKBACK_MINUTES', '10')) ~ '') | trim %}
    {%- if not lookback.isdigit() %}
    {{ exceptions.raise_compiler_error(
        "incremental_lookback_minutes (ORDERTOWER_INCREMENTAL_LOOKBACK_MINUTES) must be a whole "
        ~ "number of minutes, not '" ~ lookback ~ "'") }}
    {%- endif %}
    ({{ refreshed_since() }} - to_minutes(cast({{ lookback }} as bigint)))
{%- endmacro %}

{#- Keep only the re-derived orders (the model's `changed` CTE) on an incremental run: a where
    clause, or nothing. -#}
{% macro only_changed(column) -%}
    {%- if is_incremental() and not var('as_of', none) %}
    where {{ column }} in (select order_id from changed)
    {%- endif %}
{%- endmacro %}

{#- After a model's rows on an incremental run: one marker row (the key and refreshed_at, all
    else null) for each re-derived key left without any row, so the delete+insert replaces the
    key's former rows by none (an order whose last open exception a late delivery scan closed
    away, a day whose only episode moved). The model's post-hook delete_markers removes them. -#}
{% macro replaced_keys(rows_cte, key='order_id', keys_cte='changed') -%}
    {%- if is_incremental() and not var('as_of', none) %}
    union all by name
    select {{ key }}, {{ run_started() }} as refreshed_at
    from {{ keys_cte }}
    where {{ key }} is not null and {{ key }} not in (select {{ key }} from {{ rows_cte }})
    {%- endif %}
{%- endmacro %}

{#- The post-hook of a model using replaced_keys: `column` is never null in a real row. -#}
{% macro delete_markers(column) -%}
    delete from {{ this }} where {{ column }} is null
{%- endmacro %}
