{#-
    PII masking policy of the staging layer, kept in one place (see data_contracts/*.yaml,
    `classification: pii`). PII never leaves the raw layer unmasked:

    - names, streets, cities, phones, e-mails, postal codes, free text: not selected at all;
    - identifiers that models must still count and join on (IP addresses, device ids, payment
      instruments): hash_pii(), a SHA-256 hex digest named <column>_hash;
    - coordinates of people's addresses: approx_coordinate(), rounded to 2 decimals (~1 km),
      named <prefix>_lat_approx / <prefix>_lon_approx;
    - IPv4 addresses that must still be geolocated: ipv4_network_int(), the /24 network with the
      last octet zeroed (the usual IP anonymisation), as an unsigned 32-bit integer comparable
      with ip_ranges.ip_from / ip_to.
-#}

{% macro hash_pii(expr) -%}
    sha256(cast({{ expr }} as varchar))
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
