-- Every ETA the platform has predicted for a shipment: the champion's batch ETAs of the open
-- shipments (ml.shipment_etas, rewritten by the shipment_etas asset) and the live ETAs the stream
-- predicts as carrier events arrive (ml.shipment_eta_updates, appended by `ordertower stream`).
-- Either table may not exist yet (no champion, no stream); its half of the union is then empty.
{%- set batch = load_relation(source('ml', 'shipment_etas')) %}
{%- set live = load_relation(source('ml', 'shipment_eta_updates')) %}

with

batch as (

    {% if batch is not none %}
    select
        shipment_id, order_id, tracking_ref, as_of, predicted_delivery_at, remaining_hours,
        planned_delivery_at, cast(model_version as varchar) as model_version,
        cast(last_event_code as varchar) as last_event_code, computed_at as predicted_at,
        'batch' as eta_source
    from {{ source('ml', 'shipment_etas') }}
    {% else %}
    select
        cast(null as varchar) as shipment_id, cast(null as varchar) as order_id,
        cast(null as varchar) as tracking_ref, cast(null as timestamptz) as as_of,
        cast(null as timestamptz) as predicted_delivery_at, cast(null as double) as remaining_hours,
        cast(null as timestamptz) as planned_delivery_at, cast(null as varchar) as model_version,
        cast(null as varchar) as last_event_code, cast(null as timestamptz) as predicted_at,
        'batch' as eta_source
    where false
    {% endif %}

),

live as (

    {% if live is not none %}
    select
        shipment_id, order_id, tracking_ref, as_of, predicted_delivery_at, remaining_hours,
        planned_delivery_at, cast(model_version as varchar) as model_version,
        cast(null as varchar) as last_event_code, predicted_at,
        'stream' as eta_source
    from {{ source('ml', 'shipment_eta_updates') }}
    {% else %}
    select * from batch where false
    {% endif %}

),

unioned as (

    select * from batch
    union all
    select * from live

),

renamed as (

    select
        -- ids
        shipment_id,
        order_id,
        tracking_ref,
        model_version,

        -- strings
        eta_source,
        last_event_code,

        -- numerics
        cast(remaining_hours as double) as remaining_hours,

        -- timestamps
        cast(as_of as timestamptz) as as_of,
        cast(predicted_delivery_at as timestamptz) as predicted_delivery_at,
        cast(planned_delivery_at as timestamptz) as planned_delivery_at,
        cast(predicted_at as timestamptz) as predicted_at

    from unioned
    where shipment_id is not null

)

select * from renamed
