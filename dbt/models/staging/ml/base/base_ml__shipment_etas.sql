-- The champion's batch ETAs of the open shipments (ml.shipment_etas, rewritten by the
-- shipment_etas asset); an empty relation until the first champion has predicted.
{{ config(materialized='ephemeral') }}
{%- set columns = [
    ['shipment_id', 'varchar'], ['order_id', 'varchar'], ['tracking_ref', 'varchar'],
    ['as_of', 'timestamptz'], ['predicted_delivery_at', 'timestamptz'],
    ['remaining_hours', 'double'], ['planned_delivery_at', 'timestamptz'],
    ['model_version', 'varchar'], ['last_event_code', 'varchar'], ['computed_at', 'timestamptz']
] %}

with

source as (

    {{ source_or_empty('ml', 'shipment_etas', columns) }}

)

select
    shipment_id, order_id, tracking_ref, as_of, predicted_delivery_at, remaining_hours,
    planned_delivery_at, cast(model_version as varchar) as model_version,
    cast(last_event_code as varchar) as last_event_code, computed_at as predicted_at,
    cast(null as varchar) as batch_id, 'batch' as eta_source
from source
