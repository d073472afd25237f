{#-
    The combination of columns is unique over the model (a composite primary key).
    dbt_utils.unique_combination_of_columns is not available offline, hence this test.

        data_tests:
          - unique_combination:
              arguments:
                combination_of_columns: [order_id, line_no]
-#}
{% test unique_combination(model, combination_of_columns) %}

{%- set columns_csv = combination_of_columns | join(', ') %}

select
    {{ columns_csv }},
    count(*) as n_records
from {{ model }}
group by {{ columns_csv }}
having count(*) > 1

{% endtest %}
