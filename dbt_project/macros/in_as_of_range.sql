{#- The as-of dates a run builds: vars as_of_start..as_of_end (end defaults to start); every date when unset.
    Incremental marts filter on this so a rerun of one day never rewrites another. -#}
{%- macro in_as_of_range(column='as_of_date') -%}
    {%- set as_of_start = date_var('as_of_start') -%}
    {%- set as_of_end = date_var('as_of_end') or as_of_start -%}
    {%- if as_of_start -%}
        {{ column }} between date '{{ as_of_start }}' and date '{{ as_of_end }}'
    {%- else -%}
        true
    {%- endif -%}
{%- endmacro -%}
