-- The order marts' change feed: one row per record of any of an order's inputs, with the order
-- it belongs to and when ingestion landed it. The incremental marts (macros/incremental.sql)
-- read what landed after their watermark; a filter on ingested_at reaches every branch.
with

shipments as (

    select shipment_id, order_id from {{ ref('stg_tms__shipments') }}

),

legs as (

    select legs.tracking_ref, shipments.order_id
    from {{ ref('stg_tms__shipment_legs') }} as legs
    inner join shipments on legs.shipment_id = shipments.shipment_id

),

changes as (

    select order_id, 'oms_orders' as input_name, ingested_at from {{ ref('stg_oms__orders') }}
    union all
    select order_id, 'oms_order_lines', ingested_at from {{ ref('stg_oms__order_lines') }}
    union all
    select order_id, 'oms_cancellations', ingested_at from {{ ref('stg_oms__cancellations') }}
    union all
    select order_id, 'crm_reviews', ingested_at from {{ ref('stg_crm__reviews') }}
    union all
    select order_id, 'olist_orders', ingested_at from {{ ref('stg_olist__orders') }}
    union all
    select order_id, 'olist_order_items', ingested_at from {{ ref('stg_olist__order_items') }}
    union all
    select order_id, 'tms_shipments', ingested_at from {{ ref('stg_tms__shipments') }}
    union all
    select shipments.order_id, 'tms_shipment_lines', shipment_lines.ingested_at
    from {{ ref('stg_tms__shipment_lines') }} as shipment_lines
    inner join shipments on shipment_lines.shipment_id = shipments.shipment_id
    union all
    select shipments.order_id, 'tms_shipment_legs', shipment_legs.ingested_at
    from {{ ref('stg_tms__shipment_legs') }} as shipment_legs
    inner join shipments on shipment_legs.shipment_id = shipments.shipment_id
    union all
    -- batch files and the live stream alike
    select legs.order_id, 'carrier_events', events.ingested_at
    from {{ ref('stg_carriers__carrier_events') }} as events
    inner join legs on events.tracking_ref = legs.tracking_ref

)

select * from changes
