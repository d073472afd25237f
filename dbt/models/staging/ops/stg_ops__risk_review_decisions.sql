-- The analysts' review decisions; the table exists once the first decision is written, and until
-- then this view is empty with the same columns.
{%- set decisions = load_relation(source('ops', 'risk_review_decisions')) %}

with

source as (

    {% if decisions is not none %}
    select * from {{ source('ops', 'risk_review_decisions') }}
    {% else %}
    select
        cast(null as varchar) as decision_id,
        cast(null as varchar) as order_id,
        cast(null as varchar) as decision,
        cast(null as varchar) as reviewer,
        cast(null as varchar) as note,
        cast(null as timestamptz) as decided_at,
        cast(null as varchar) as model_version
    where false
    {% endif %}

),

renamed as (

    select
        -- ids
        decision_id,
        order_id,

        -- strings
        decision,
        reviewer,
        note,
        model_version,

        -- booleans
        decision = 'reject' as is_rejected,

        -- timestamps
        cast(decided_at as timestamptz) as decided_at

    from source

)

select * from renamed
