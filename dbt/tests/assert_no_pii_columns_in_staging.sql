{#-
    Guard of the PII policy (macros/mask.sql): no column of the staging schema may carry a raw
    PII value. Fails on any staging column named like one of the raw PII columns of the
    contracts, unless it is a masked derivative (*_hash, *_approx, *_count, has_*).
-#}
{{ config(tags=['pii']) }}

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
