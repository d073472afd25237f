{#-
    PII masking policy of the staging layer, kept in one place (see data_contracts/*.yaml,
    `classification: pii`). PII never leaves the raw layer unmasked:

    - names, streets, cities, phones, e-mails, postal codes, free text: not selected at all;
    - identifiers that models must still count and join on (IP addresses, IP networks, device
      ids, payment instruments, shipping addresses): hash_pii(), a keyed HMAC-SHA256 hex digest
      named <column>_hash. pii_hmac() is a Python function that ordertower.dbt_plugin (dbt) and
      ordertower.lake (every other reader) register on the connection; its key lives outside
      the lake and the repository and never appears in SQL (docs/pii.md). Without the key a
      digest cannot be brute-forced, not even an IPv4 address's;
    - coordinates of people's addresses: approx_coordinate(), rounded to 2 decimals (~1 km),
      named <prefix>_lat_approx / <prefix>_lon_approx;
    - IPv4 addresses that must still be geolocated: ipv4_network_int(), the /24 network with the
      last octet zeroed, as an unsigned 32-bit integer comparable with ip_ranges.ip_from / ip_to.
      Only computed inside the query that geolocates (the ephemeral stg_oms__order_ip_networks);
      never stored or exposed beside a hash of the same address. ipv4_network_text() is the /24
      as text ('2.57.202.0/24'), the input of the network's keyed hash.
-#}

{% macro hash_pii(expr) -%}
    pii_hmac(cast({{ expr }} as varchar))
{%- endmacro %}


{% macro approx_coordinate(expr, decimals=2) -%}
    round(cast({{ expr }} as double), {{ decimals }})
{%- endmacro %}


{% macro ipv4_network_int(expr) -%}
    case
        when regexp_full_match({{ expr }}, '[0-9]{1,3}([.][0-9]{1,3}){3}')
            then cast(split_part({{ expr }}, '.', 1) as bigint) * 16777216
                + cast(split_part({{ expr }}, '.', 2) as bigint) * 65536
                + cast(split_part({{ expr }}, '.', 3) as bigint) * 256
    end
{%- endmacro %}


{% macro ipv4_network_text(expr) -%}
    case
        when regexp_full_match({{ expr }}, '[0-9]{1,3}([.][0-9]{1,3}){3}')
            then concat_ws('.', cast(split_part({{ expr }}, '.', 1) as bigint),
                cast(split_part({{ expr }}, '.', 2) as bigint),
                cast(split_part({{ expr }}, '.', 3) as bigint)) || '.0/24'
    end
{%- endmacro %}
