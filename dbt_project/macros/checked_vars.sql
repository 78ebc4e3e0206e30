{#- Vars that reach SQL text, checked first: a date var must be a calendar date (YYYY-MM-DD) and a count a
    whole number, so a mistyped or hostile value fails the run with its name instead of being pasted into a
    query. Empty (unset) gives none. -#}
{%- macro date_var(name) -%}
    {%- set value = var(name, none) -%}
    {%- if value is none or value | string == '' -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set text = value | string -%}
    {%- if not modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}$', text) -%}
        {{ exceptions.raise_compiler_error("var " ~ name ~ "=\"" ~ text ~ "\": expected a date, YYYY-MM-DD") }}
    {%- endif -%}
    {%- do modules.datetime.date.fromisoformat(text) -%}
    {{ return(text) }}
{%- endmacro -%}


{%- macro int_var(name) -%}
    {%- set value = var(name, none) -%}
    {%- if value is none or value | string == '' -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set text = value | string -%}
    {%- if not modules.re.match('^[0-9]+$', text) -%}
        {{ exceptions.raise_compiler_error("var " ~ name ~ "=\"" ~ text ~ "\": expected a whole number of days") }}
    {%- endif -%}
    {{ return(text | int) }}
{%- endmacro -%}
