-- The live ETAs `ordertower stream` predicts as carrier events arrive (ml.shipment_eta_updates,
-- appended); an empty relation until the stream has predicted one.
{{ config(materialized='ephemeral') }}
{%- set columns = [
    ['shipment_id', 'varchar'], ['order_id', 'varchar'], ['tracking_ref', 'varchar'],
    ['as_of', 'timestamptz'], ['predicted_delivery_at', 'timestamptz'],
    ['remaining_hours', 'double'], ['planned_delivery_at', 'timestamptz'],
    ['model_version', 'varchar'], ['batch_id', 'varchar'],
    ['predicted_at', 'timestamptz']
] %}

with

source as (

    {{ source_or_empty('ml', 'shipment_eta_updates', columns) }}

)

select
    shipment_id, order_id, tracking_ref, as_of, predicted_delivery_at, remaining_hours,
    planned_delivery_at, cast(model_version as varchar) as model_version,
    cast(null as varchar) as last_event_code, predicted_at,
    cast(batch_id as varchar) as batch_id, 'stream' as eta_source
from source
