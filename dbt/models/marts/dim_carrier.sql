-- One row per carrier, with its modes and feed format.
select
    -- ids
    carrier_id,

    -- strings
    carrier_name,
    carrier_type,
    feed_format,
    modes,
    primary_mode,
    country_code,

    -- booleans
    contains(modes, 'last_mile') as serves_last_mile

from {{ ref('stg_carriers__carriers') }}
