{#-
    Every row satisfies a boolean SQL expression (rows where it is false fail; null passes,
    as in a CHECK constraint).

        data_tests:
          - expression_is_true:
              arguments:
                expression: "planned_arrival_at >= planned_departure_at"
-#}
{% test expression_is_true(model, expression, column_name=none) %}

select *
from {{ model }}
where not ({{ expression }})

{% endtest %}
