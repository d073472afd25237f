-- Olist's product catalogue as landed (raw.olist_products); joined to its category lookup in
-- stg_olist__products.
{{ config(materialized='ephemeral') }}

select * from {{ source('olist', 'olist_products') }}
