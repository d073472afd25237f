-- Delivery state of each customer message in the CRM outbox (ops.crm_outbox). The payload (which
-- holds the customer's first name) stays in the ops table: only ids and delivery state pass.
{%- set outbox = load_relation(source('ops', 'crm_outbox')) %}

with

source as (

    {% if outbox is not none %}
    select message_id, alert_id, status, attempts, created_at, sent_at, last_error
    from {{ source('ops', 'crm_outbox') }}
    {% else %}
    select
        cast(null as varchar) as message_id,
        cast(null as varchar) as alert_id,
        cast(null as varchar) as status,
        cast(null as integer) as attempts,
        cast(null as timestamptz) as created_at,
        cast(null as timestamptz) as sent_at,
        cast(null as varchar) as last_error
    where false
    {% endif %}

),

renamed as (

    select
        -- ids
        message_id,
        alert_id,

        -- strings
        status as delivery_status,
        last_error,

        -- numerics
        cast(attempts as integer) as attempts,

        -- timestamps
        cast(created_at as timestamptz) as queued_at,
        cast(sent_at as timestamptz) as sent_at

    from source

)

select * from renamed
