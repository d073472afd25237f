with

source as (

    select * from {{ source('tms', 'shipment_legs') }}

),

renamed as (

    select
        -- ids
        shipment_id,
        cast(leg_no as integer) as leg_no,
        carrier_id,
        tracking_ref,

        -- strings
        mode,
        vehicle_class,
        origin_name,
        origin_country as origin_country_code,
        -- destination_name is pii only on last-mile legs (the delivery address area):
        -- hubs, stations and ports are kept, delivery addresses are not
        case when mode <> 'last_mile' then destination_name end as destination_hub_name,
        destination_country as destination_country_code,

        -- numerics
        cast(origin_lat as double) as origin_lat,
        cast(origin_lon as double) as origin_lon,
        {{ approx_coordinate('destination_lat') }} as destination_lat_approx,
        {{ approx_coordinate('destination_lon') }} as destination_lon_approx,
        cast(distance_km as double) as distance_km,

        -- booleans
        mode = 'last_mile' as is_last_mile,
        origin_country is distinct from destination_country as is_cross_border,

        -- timestamps
        cast(planned_departure_at as timestamptz) as planned_departure_at,
        cast(planned_arrival_at as timestamptz) as planned_arrival_at,

        -- lineage
        _partition_key as partition_key,
        _ingested_at as ingested_at

    from source

)

select * from renamed
