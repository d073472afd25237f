-- Carrier events received live from the broker by `ordertower stream`
-- (raw.carrier_events_stream), marked as received by stream. The table exists once the stream
-- has stored an event; until then this is an empty relation with the columns staging reads.
{{ config(materialized='ephemeral') }}
{%- set columns = [
    ['event_id', 'varchar'], ['carrier_id', 'varchar'], ['feed_format', 'varchar'],
    ['tracking_ref', 'varchar'], ['event_ts', 'timestamptz'], ['event_code', 'varchar'],
    ['exception_reason', 'varchar'], ['event_classifier', 'varchar'],
    ['carrier_status_code', 'varchar'], ['carrier_status_text', 'varchar'],
    ['is_unmapped', 'boolean'], ['mode', 'varchar'], ['location_name', 'varchar'],
    ['location_country', 'varchar'], ['location_lat', 'double'], ['location_lon', 'double'],
    ['_partition_key', 'varchar'], ['_ingested_at', 'timestamptz'],
    ['_published_at', 'timestamptz']
] %}

with

source as (

    {{ source_or_empty('carriers', 'carrier_events_stream', columns) }}

)

select
    *,
    'stream' as received_via
from source
