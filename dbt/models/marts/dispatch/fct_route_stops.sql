-- One row per stop of a van route, in visiting order, with the delivery window and the planned
-- arrival (minutes after midnight, the warehouse's local time).
with

stops as (

    select * from {{ ref('stg_ml__route_stops') }}

)

select
    -- ids
    route_id || '/' || cast(stop_no as varchar) as route_stop_id,
    route_id,
    order_id,
    warehouse_id,

    -- numerics
    stop_no,
    lat as destination_lat_approx,
    lon as destination_lon_approx,
    load_kg,
    window_start_min,
    window_end_min,
    arrival_min,

    -- booleans
    arrival_min between window_start_min and window_end_min as is_within_window,

    -- dates
    wave_date

from stops
