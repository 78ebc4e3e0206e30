{#- Where an optional source's files are: a shop may never send a user table, a catalogue or a campaign, and a
    segments build run by hand after `ml score` alone finds no reasons or monitoring rows yet (nor clusters, on
    days scored before they were added). -#}
{%- macro source_files(source_name, table_name) -%}
    {%- set landing = env_var('SHOP_LANDING_DIR', '../data/landing') -%}
    {%- set patterns = {
        'landing': {
            'users': landing ~ '/users/*.parquet',
            'products': landing ~ '/products/*.parquet',
            'coupon_sends': landing ~ '/coupon_sends/*/*.parquet',
        },
        'ml': {
            'score_reasons': env_var('SHOP_REASONS_DIR', '../data/score_reasons') ~ '/*/*.parquet',
            'model_monitoring': env_var('SHOP_MONITORING_DIR', '../data/monitoring') ~ '/*/*.parquet',
            'clusters': env_var('SHOP_CLUSTERS_DIR', '../data/clusters') ~ '/*/*.parquet',
            'cluster_profiles': env_var('SHOP_CLUSTER_PROFILES_DIR', '../data/cluster_profiles') ~ '/*/*.parquet',
            'segment_forecasts': env_var('SHOP_FORECASTS_DIR', '../data/forecasts') ~ '/*/*.parquet',
        },
    } -%}
    {{ return(patterns[source_name][table_name]) }}
{%- endmacro -%}


{#- Whether an optional source has any file. While dbt parses (execute is false) it answers true, so the
    source stays in the lineage. -#}
{%- macro has_files(source_name, table_name) -%}
    {%- if not execute -%}
        {{ return(true) }}
    {%- endif -%}
    {{ return(adapter.dispatch('has_files')(source_name, table_name)) }}
{%- endmacro -%}

{%- macro default__has_files(source_name, table_name) -%}
    {%- set found = run_query("select count(*) from glob('" ~ source_files(source_name, table_name) ~ "')") -%}
    {{ return(found.columns[0].values()[0] > 0) }}
{%- endmacro -%}

{#- Spark SQL cannot list files: the pipeline's dbt calls name the optional sources that have files in
    SHOP_DBT_SOURCES_WITH_FILES (ml.warehouse.dbt_runner); unset (dbt by hand), every source is taken as present. -#}
{%- macro spark__has_files(source_name, table_name) -%}
    {%- set present = env_var('SHOP_DBT_SOURCES_WITH_FILES', '*') -%}
    {{ return(present == '*' or (source_name ~ '.' ~ table_name) in present.split(',')) }}
{%- endmacro -%}


{#- The rows of an optional source, or no rows of the same columns (an empty, typed relation instead of an IO
    error) while it has no file. `columns` maps each column the model reads to its type. -#}
{%- macro source_or_empty(source_name, table_name, columns) -%}
    {%- if has_files(source_name, table_name) -%}
        select * from {{ source(source_name, table_name) }}
    {%- else -%}
        select
        {%- for name, data_type in columns.items() %}
            cast(null as {{ data_type }}) as {{ name }}{{ ',' if not loop.last }}
        {%- endfor %}
        where false
    {%- endif -%}
{%- endmacro -%}
