with

source as (

    select * from {{ source('wms', 'inventory_snapshots') }}

),

renamed as (

    select
        -- ids
        warehouse_id,
        sku_id,

        -- numerics
        cast(on_hand as integer) as on_hand_qty,
        cast(reserved as integer) as reserved_qty,
        cast(on_hand as integer) - cast(reserved as integer) as available_qty,
        cast(inbound as integer) as inbound_qty,
        cast(replenished_qty as integer) as replenished_qty,

        -- booleans
        on_hand = 0 as is_stock_out,
        reserved > on_hand as is_over_reserved,

        -- dates
        cast(snapshot_date as date) as snapshot_date,

        -- lineage
        _partition_key as partition_key,
        _ingested_at as ingested_at

    from source

)

select * from renamed
