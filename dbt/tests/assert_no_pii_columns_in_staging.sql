{#-
    Guard of the PII policy (macros/mask.sql): no column of the staging schema may carry a raw
    PII value. Fails on any staging column named like one of the raw PII columns of the
    contracts, unless it is a masked derivative (*_hash, *_approx, *_count, has_*).
    It runs after every staging view of the lake's dbt build (the depends_on list below: all but
    the ml ones, which their own assets build and which hold no personal data;
    tests/test_dbt_rules.py keeps it complete), and Dagster shows it as an asset check of
    stg_oms__orders, the orders carrying most of the PII (a singular test on several models
    needs one to hang on: meta dagster.ref). A run that does not build stg_oms__orders (the
    tracking marts' refresh) leaves it out, as Dagster does with any asset's checks
    (pipelines/defs/transform/assets.py).
-#}
{{ config(tags=['pii'], meta={'dagster': {'ref': {'name': 'stg_oms__orders'}}}) }}
{%- set staging_views = [
    'stg_carriers__carrier_events',
    'stg_carriers__carriers',
    'stg_crm__customers',
    'stg_crm__reviews',
    'stg_olist__customers',
    'stg_olist__order_items',
    'stg_olist__orders',
    'stg_olist__products',
    'stg_oms__cancellations',
    'stg_oms__order_lines',
    'stg_oms__orders',
    'stg_ops__crm_outbox',
    'stg_ops__exception_alerts',
    'stg_ops__risk_review_decisions',
    'stg_payments__chargebacks',
    'stg_reference__ip_ranges',
    'stg_reference__skus',
    'stg_reference__warehouses',
    'stg_tms__shipment_legs',
    'stg_tms__shipment_lines',
    'stg_tms__shipments',
    'stg_wms__inventory_snapshots'
] %}
{%- for name in staging_views %}
-- depends_on: {{ ref(name) }}
{%- endfor %}


select table_name, column_name
from information_schema.columns
where table_catalog = '{{ target.database }}'
    and table_schema = 'staging'
    and table_name like 'stg\_%' escape '\'
    and not regexp_matches(column_name, '(_hash|_approx|_count)$|^has_')
    and regexp_matches(
        column_name,
        'full_name|email|phone|street|postal|comment|ip_address|ip_addresses|device_id|devices'
        || '|payment_instrument|^destination_name$|^destination_lat$|^destination_lon$'
        || '|(home|billing|shipping)_(address_)?(city|lat|lon|latitude|longitude)$'
        || '|zip_code|^customer_city$'
    )
