{#- Vars that reach SQL text, checked first: a date var must be a calendar date (YYYY-MM-DD) and a count a
    whole number, so a mistyped or hostile value fails the run with its name instead of being pasted into a
    query. Empty (unset) gives none. -#}
{%- macro date_var(name) -%}
    {%- set text = checked_var(name, '^[0-9]{4}-[0-9]{2}-[0-9]{2}$', 'a date, YYYY-MM-DD') -%}
    {%- if text is not none -%}
        {%- do modules.datetime.date.fromisoformat(text) -%}
    {%- endif -%}
    {{ return(text) }}
{%- endmacro -%}


{%- macro int_var(name) -%}
    {%- set text = checked_var(name, '^[0-9]+$', 'a whole number of days') -%}
    {{ return(none if text is none else text | int) }}
{%- endmacro -%}


{#- The var as text if it matches `pattern`; none when unset; otherwise the run fails naming it.
    The day's dates come from the pipeline in SHOP_DBT_DAY_VARS (JSON), read only when the SQL runs: new --vars
    make dbt reparse the project, so the pipeline keeps the day out of them (ml.warehouse.dbt_runner.DAY_VARS).
    Parsing sees no dates, the branch that reads every date, so every model's refs are known. -#}
{%- macro checked_var(name, pattern, expected) -%}
    {%- set value = var(name, '(not set)') -%}  {#- a var set to null (a unit test's override) stays unset -#}
    {%- if value == '(not set)' -%}
        {%- set value = fromjson(env_var('SHOP_DBT_DAY_VARS', '{}')).get(name) if execute else none -%}
    {%- endif -%}
    {%- if value is none or value | string == '' -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set text = value | string -%}
    {%- if not modules.re.match(pattern, text) -%}
        {{ exceptions.raise_compiler_error("var " ~ name ~ "=\"" ~ text ~ "\": expected " ~ expected) }}
    {%- endif -%}
    {{ return(text) }}
{%- endmacro -%}
