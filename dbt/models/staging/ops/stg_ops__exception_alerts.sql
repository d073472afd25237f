-- Exception alerts raised on the live stream (ops.exception_alerts, written by `ordertower stream`);
-- the table exists once the stream has started, and until then this view is empty.
{%- set alerts = load_relation(source('ops', 'exception_alerts')) %}

with

source as (

    {% if alerts is not none %}
    select * from {{ source('ops', 'exception_alerts') }}
    {% else %}
    select
        cast(null as varchar) as alert_id,
        cast(null as varchar) as rule,
        cast(null as varchar) as reason,
        cast(null as varchar) as sub_reason,
        cast(null as varchar) as severity,
        cast(null as integer) as sla_minutes,
        cast(null as varchar) as shipment_id,
        cast(null as varchar) as order_id,
        cast(null as varchar) as customer_id,
        cast(null as varchar) as tracking_ref,
        cast(null as varchar) as carrier_id,
        cast(null as varchar) as mode,
        cast(null as varchar) as service_level,
        cast(null as varchar) as trigger_event_id,
        cast(null as timestamptz) as event_at,
        cast(null as timestamptz) as clock_at,
        cast(null as timestamptz) as published_at,
        cast(null as timestamptz) as detected_at,
        cast(null as date) as promised_delivery_date,
        cast(null as timestamptz) as eta_at,
        cast(null as double) as hours_late,
        cast(null as boolean) as promise_at_risk,
        cast(null as decimal(18, 2)) as order_value_eur,
        cast(null as varchar) as recommended_option,
        cast(null as varchar) as recommended_action,
        cast(null as varchar) as alternatives,
        cast(null as varchar) as batch_id
    where false
    {% endif %}

),

renamed as (

    select
        -- ids
        alert_id,
        shipment_id,
        order_id,
        customer_id,
        tracking_ref,
        carrier_id,
        trigger_event_id,
        batch_id,

        -- strings
        rule,
        reason,
        sub_reason,
        severity,
        mode,
        service_level,
        recommended_option,
        recommended_action,
        alternatives as alternatives_json,

        -- numerics
        sla_minutes,
        hours_late,
        order_value_eur,

        -- booleans
        promise_at_risk,

        -- dates
        promised_delivery_date,

        -- timestamps
        event_at,
        clock_at,
        published_at,
        detected_at,
        eta_at

    from source

)

select * from renamed
