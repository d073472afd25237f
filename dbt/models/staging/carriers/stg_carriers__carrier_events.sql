with

-- the same canonical columns from both ways in: files (batch) and the broker (stream)
source as (

    select * from {{ ref('base_carriers__carrier_events') }}

    union all by name

    select * from {{ ref('base_carriers__carrier_events_stream') }}

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
