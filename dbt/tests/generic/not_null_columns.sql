{#-
    None of the columns holds a null: dbt's not_null for several columns of one model in one
    scan. A failure returns one row per column with nulls, with how many (the test's failures
    are the columns that broke). A model's columns that are not part of its primary key are
    declared here rather than one not_null test each: every data test is a query of its own on
    the lake (tens of milliseconds of catalog reads before any row), so one test per column
    cost most of a build's tests. Primary-key columns keep unique + not_null, the pair the
    project evaluator recognises (pipelines/dbt_rules.py).

        data_tests:
          - not_null_columns:
              arguments:
                column_names: [customer_id, channel, currency]
-#}
{% test not_null_columns(model, column_names) %}

{%- if not column_names %}
    {{ exceptions.raise_compiler_error("not_null_columns needs at least one column name") }}
{%- endif %}

select column_name, null_rows
from (
    select
    {%- for column in column_names %}
        count(*) filter (where {{ column }} is null) as {{ column }}{{ "," if not loop.last }}
    {%- endfor %}
    from {{ model }}
) unpivot (null_rows for column_name in ({{ column_names | join(", ") }}))
where null_rows > 0

{% endtest %}
