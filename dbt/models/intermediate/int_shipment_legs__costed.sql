-- Each shipment leg with its tonne-km, transport cost and well-to-wheel emissions (GLEC
-- Framework / ISO 14083): the shipment's mass times the leg's distance times the emission
-- intensity of the leg's vehicle class (DEFRA/DESNZ 2025, WTW = TTW + WTT, seed
-- freight_emission_factors). Allocation by mass x distance is what the per-tonne-km factor
-- does: each shipment carries its tonne-km share of the vehicle's emissions.
-- The green alternative re-plans the leg per seed green_mode_shift (long road line-haul by
-- rail, air freight by sea) and keeps legs that have no greener option.
with

legs as (

    select * from {{ ref('stg_tms__shipment_legs') }}

),

shipments as (

    select shipment_id, order_id, total_weight_kg from {{ ref('stg_tms__shipments') }}

),

factors as (

    select * from {{ ref('freight_emission_factors') }}

),

rates as (

    select * from {{ ref('freight_rates') }}

),

shifts as (

    select * from {{ ref('green_mode_shift') }}

),

joined as (

    select
        legs.shipment_id,
        legs.leg_no,
        shipments.order_id,
        legs.mode,
        legs.vehicle_class,
        legs.distance_km,
        legs.carrier_id,
        legs.destination_country_code,
        legs.destination_hub_name,
        legs.destination_lat_approx,
        legs.destination_lon_approx,
        legs.is_cross_border,
        legs.is_last_mile,
        legs.origin_country_code,
        legs.origin_lat,
        legs.origin_lon,
        legs.origin_name,
        legs.planned_arrival_at,
        legs.planned_departure_at,
        legs.tracking_ref,
        shipments.total_weight_kg as weight_kg,
        shipments.total_weight_kg / 1000.0 * legs.distance_km as tonne_km,
        factor.ttw_g_co2e_per_tkm,
        factor.wtt_g_co2e_per_tkm,
        factor.wtw_g_co2e_per_tkm,
        rate.fixed_eur_per_shipment,
        rate.eur_per_tonne_km,
        shifts.to_vehicle_class as green_vehicle_class,
        shifts.to_mode as green_mode,
        shifts.distance_factor as green_distance_factor,
        shifts.extra_days as green_extra_days,
        green_factor.wtw_g_co2e_per_tkm as green_wtw_g_co2e_per_tkm
    from legs
    inner join shipments on legs.shipment_id = shipments.shipment_id
    left join factors as factor on legs.vehicle_class = factor.vehicle_class
    left join rates as rate on legs.vehicle_class = rate.vehicle_class
    left join shifts
        on legs.vehicle_class = shifts.from_vehicle_class
        and legs.distance_km >= shifts.min_distance_km
    left join factors as green_factor on shifts.to_vehicle_class = green_factor.vehicle_class

)

select
    shipment_id,
    leg_no,
    order_id,
    mode,
    vehicle_class,
    distance_km,
    -- the leg as staging has it, so the mart reads legs from here only
    carrier_id,
    destination_country_code,
    destination_hub_name,
    destination_lat_approx,
    destination_lon_approx,
    is_cross_border,
    is_last_mile,
    origin_country_code,
    origin_lat,
    origin_lon,
    origin_name,
    planned_arrival_at,
    planned_departure_at,
    tracking_ref,
    weight_kg,
    tonne_km,
    wtw_g_co2e_per_tkm,
    -- grams are precise enough: rounding keeps sums reproducible across engines
    round(tonne_km * ttw_g_co2e_per_tkm / 1000.0, 6) as ttw_kg_co2e,
    round(tonne_km * wtt_g_co2e_per_tkm / 1000.0, 6) as wtt_kg_co2e,
    round(tonne_km * wtw_g_co2e_per_tkm / 1000.0, 6) as kg_co2e,
    cast(round(fixed_eur_per_shipment + tonne_km * eur_per_tonne_km, 4) as decimal(18, 4))
        as transport_cost_eur,
    coalesce(green_mode, mode) as green_mode,
    coalesce(green_vehicle_class, vehicle_class) as green_vehicle_class,
    round(
        coalesce(
            tonne_km * green_distance_factor * green_wtw_g_co2e_per_tkm,
            tonne_km * wtw_g_co2e_per_tkm
        ) / 1000.0,
        6
    ) as green_kg_co2e,
    coalesce(green_extra_days, 0) as green_extra_days
from joined
