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
        {{ no_rows(columns) }}
    {%- endif -%}
{%- endmacro -%}


{#- The same for the ML steps' optional outputs: the reasons (`ml score`) and the monitoring rows (the daily
    `monitor` step), which a segments build run by hand after `ml score` alone may not find yet. -#}
{%- macro written_or_empty(table_name, columns) -%}
    {%- set patterns = {
        'score_reasons': env_var('SHOP_REASONS_DIR', '../data/score_reasons') ~ '/*/*.parquet',
        'model_monitoring': env_var('SHOP_MONITORING_DIR', '../data/monitoring') ~ '/*/*.parquet',
    } -%}
    {%- set found = true -%}
    {%- if execute -%}
        {%- set found = run_query("select count(*) from glob('" ~ patterns[table_name] ~ "')").columns[0].values()[0] > 0 -%}
    {%- endif -%}
    {%- if found -%}
        select * from {{ source('ml', table_name) }}
    {%- else -%}
        {{ no_rows(columns) }}
    {%- endif -%}
{%- endmacro -%}


{#- No rows, with the given columns and types: what a staging model reads while its source has no file. -#}
{%- macro no_rows(columns) -%}
    select
    {%- for name, data_type in columns.items() %}
        cast(null as {{ data_type }}) as {{ name }},
    {%- endfor %}
    where false
{%- endmacro -%}
