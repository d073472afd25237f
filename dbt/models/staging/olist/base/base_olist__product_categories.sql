-- Olist's own lookup of English category names, from the same extract
-- (raw.olist_product_categories).
{{ config(materialized='ephemeral') }}

select * from {{ source('olist', 'olist_product_categories') }}
