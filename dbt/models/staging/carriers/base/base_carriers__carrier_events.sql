-- Carrier events landed in files by ingestion (raw.carrier_events), marked as received by
-- batch; the stream's copy is base_carriers__carrier_events_stream. One base model per source
-- table, unioned in stg_carriers__carrier_events (dbt's base-model pattern).
{{ config(materialized='ephemeral') }}

select
    *,
    'batch' as received_via,
    cast(null as timestamptz) as _published_at
from {{ source('carriers', 'carrier_events') }}
