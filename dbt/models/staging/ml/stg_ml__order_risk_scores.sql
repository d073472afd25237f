-- The risk model's scores as written by the scoring asset; empty (same columns) until the first
-- scoring run has created the table.
{%- set scores = load_relation(source('ml', 'order_risk_scores')) %}

with

source as (

    {% if scores is not none %}
    select * from {{ source('ml', 'order_risk_scores') }}
    {% else %}
    select
        cast(null as varchar) as order_id,
        cast(null as varchar) as partition_key,
        cast(null as timestamptz) as ordered_at,
        cast(null as double) as order_total,
        cast(null as double) as risk_score,
        cast(null as double) as raw_score,
        cast(null as varchar) as decision,
        cast(null as varchar) as reason_1,
        cast(null as varchar) as reason_1_feature,
        cast(null as double) as reason_1_contribution,
        cast(null as varchar) as reason_2,
        cast(null as varchar) as reason_2_feature,
        cast(null as double) as reason_2_contribution,
        cast(null as varchar) as reason_3,
        cast(null as varchar) as reason_3_feature,
        cast(null as double) as reason_3_contribution,
        cast(null as varchar) as model_name,
        cast(null as varchar) as model_version,
        cast(null as timestamptz) as scored_at
    where false
    {% endif %}

),

renamed as (

    select
        -- ids
        order_id,
        model_name,
        model_version,

        -- strings
        decision,
        reason_1,
        reason_1_feature,
        reason_2,
        reason_2_feature,
        reason_3,
        reason_3_feature,

        -- numerics
        cast(risk_score as double) as risk_score,
        cast(order_total as double) as order_total,
        cast(reason_1_contribution as double) as reason_1_contribution,
        cast(reason_2_contribution as double) as reason_2_contribution,
        cast(reason_3_contribution as double) as reason_3_contribution,

        -- timestamps
        cast(ordered_at as timestamptz) as ordered_at,
        cast(scored_at as timestamptz) as scored_at,

        -- lineage
        partition_key

    from source

)

select * from renamed
