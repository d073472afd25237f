{#- the live stream's table exists once carrier events were ingested or streamed -#}
{%- set stream = load_relation(source('carriers', 'carrier_events_stream')) -%}
with

source as (

    select
        *,
        'batch' as received_via,
        cast(null as timestamptz) as _published_at
    from {{ source('carriers', 'carrier_events') }}
    {%- if stream is not none %}

    union all by name

    select
        *,
        'stream' as received_via
    from {{ source('carriers', 'carrier_events_stream') }}
    {%- endif %}

),

renamed as (

    select
        -- ids (not unique: re-sent events are kept, de-duplication is downstream)
        event_id,
        carrier_id,
        tracking_ref,

        -- strings
        feed_format,
        received_via,
        event_code,
        exception_reason,
        event_classifier,
        carrier_status_code,
        carrier_status_text,
        mode,
        location_name,
        location_country as location_country_code,

        -- numerics
        cast(location_lat as double) as location_lat,
        cast(location_lon as double) as location_lon,

        -- booleans
        is_unmapped,
        event_classifier = 'ACT' as is_actual,

        -- timestamps
        cast(event_ts as timestamptz) as event_at,

        -- lineage
        _partition_key as partition_key,
        _ingested_at as ingested_at,
        _published_at as published_at

    from source

)

select * from renamed
