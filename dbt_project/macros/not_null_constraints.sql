{#- Required columns are not_null constraints of the model's contract, which dbt writes into the table only when
    it creates it. An incremental table built before a column became required would otherwise never refuse a
    null: before a run or build of such a model (a pre-hook of every model, dbt_project.yml), a column its
    contract requires but the table still allows null in gets its NOT NULL (DuckDB checks the rows already there:
    a null among them fails the run and names the column). One query over information_schema per incremental
    contracted model; nothing to alter once the table has its constraints. A pre-hook, not an on-run-start hook:
    a project hook ran (and opened the warehouse) in every dbt command, compile and test included. -#}
{%- macro enforce_not_null_constraints() -%}
    {{ return(adapter.dispatch('enforce_not_null_constraints')()) }}
{%- endmacro -%}

{%- macro default__enforce_not_null_constraints() -%}
    {%- if execute and flags.WHICH in ('run', 'build')
        and model.resource_type == 'model'
        and model.config.materialized == 'incremental'
        and model.config.contract.enforced -%}
        {%- set required = required_columns(model) -%}
        {%- if required and adapter.get_relation(this.database, this.schema, this.identifier) is not none -%}
            {%- set nullable = run_query(
                "select column_name from information_schema.columns
                 where is_nullable = 'YES' and table_schema = '" ~ this.schema ~ "'
                   and table_name = '" ~ this.identifier ~ "' and table_catalog = current_database()"
            ) -%}
            {%- for row in nullable if row[0] in required -%}
                {%- do log("adding the NOT NULL constraint of " ~ this.identifier ~ "." ~ row[0], info=true) -%}
                {%- do run_query('alter table ' ~ this ~ ' alter column "' ~ row[0] ~ '" set not null') -%}
            {%- endfor -%}
        {%- endif -%}
    {%- endif -%}
{%- endmacro -%}


{#- The columns `model`'s contract requires (not_null constraints). -#}
{%- macro required_columns(model) -%}
    {%- set required = [] -%}
    {%- for column in model.columns.values() -%}
        {%- if column.constraints | selectattr('type', 'equalto', 'not_null') | list -%}
            {%- do required.append(column.name) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(required) }}
{%- endmacro -%}

{#- Spark's Parquet tables hold no NOT NULL: nothing to add before the build; check_not_null_constraints (a post-hook)
    fails the run instead when a required column of the model's table has a null, naming it. -#}
{%- macro spark__enforce_not_null_constraints() -%}{%- endmacro -%}

{%- macro check_not_null_constraints() -%}
    {{ return(adapter.dispatch('check_not_null_constraints')()) }}
{%- endmacro -%}

{%- macro default__check_not_null_constraints() -%}{%- endmacro -%}

{%- macro spark__check_not_null_constraints() -%}
    {%- if execute and flags.WHICH in ('run', 'build') and model.resource_type == 'model'
        and model.config.materialized in ('table', 'incremental') and model.config.contract.enforced -%}
        {%- set required = required_columns(model) -%}
        {%- if required -%}
            {%- set nulls = [] -%}
            {%- for name in required -%}
                {%- do nulls.append('count_if(' ~ name ~ ' is null)') -%}
            {%- endfor -%}
            {%- set counts = run_query('select ' ~ nulls | join(', ') ~ ' from ' ~ this) -%}
            {%- for name in required -%}
                {%- if counts.rows[0][loop.index0] -%}
                    {{ exceptions.raise_compiler_error(this.identifier ~ '.' ~ name ~ ' is required (not null) but '
                        ~ counts.rows[0][loop.index0] ~ ' rows have a null') }}
                {%- endif -%}
            {%- endfor -%}
        {%- endif -%}
    {%- endif -%}
{%- endmacro -%}
