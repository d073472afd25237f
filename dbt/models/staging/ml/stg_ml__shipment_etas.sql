-- Every ETA the platform has predicted for a shipment: the champion's batch ETAs of the open
-- shipments (base_ml__shipment_etas) and the live ETAs the stream predicts as carrier events
-- arrive (base_ml__shipment_eta_updates). Either table may not exist yet (no champion, no
-- stream); its half of the union is then empty.

with

unioned as (

    select * from {{ ref('base_ml__shipment_etas') }}
    union all
    select * from {{ ref('base_ml__shipment_eta_updates') }}

),

renamed as (

    select
        -- ids
        shipment_id,
        order_id,
        tracking_ref,
        model_version,
        batch_id,

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
