{#- Whether the landing area holds any file for an optional source (users, products, coupon_sends).
    A shop may never send a user table, a catalogue or a campaign: its staging model is then an empty,
    typed relation instead of an IO error. While dbt parses (execute is false) it answers true, so the
    source stays in the lineage. -#}
{%- macro has_landed(table_name) -%}
    {%- if not execute -%}
        {{ return(true) }}
    {%- endif -%}
    {%- set landing = env_var('SHOP_LANDING_DIR', '../data/landing') -%}
    {%- set patterns = {
        'users': landing ~ '/users/*.parquet',
        'products': landing ~ '/products/*.parquet',
        'coupon_sends': landing ~ '/coupon_sends/*/*.parquet',
    } -%}
    {%- set found = run_query("select count(*) from glob('" ~ patterns[table_name] ~ "')") -%}
    {{ return(found.columns[0].values()[0] > 0) }}
{%- endmacro -%}


{#- The landed rows of an optional source, or no rows of the same columns when the shop never sent it.
    `columns` maps each column the staging model reads to its type. -#}
{%- macro landed_or_empty(table_name, columns) -%}
    {%- if has_landed(table_name) -%}
        select * from {{ source('landing', table_name) }}
    {%- else -%}
        select
        {%- for name, data_type in columns.items() %}
            cast(null as {{ data_type }}) as {{ name }},
        {%- endfor %}
        where false
    {%- endif -%}
{%- endmacro -%}
