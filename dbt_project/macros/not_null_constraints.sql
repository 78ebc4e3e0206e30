{#- Required columns are not_null constraints of the model's contract, which dbt writes into the table only when
    it creates it. An incremental table built before a column became required would otherwise never refuse a
    null: before a run or build of such a model (a pre-hook of every model, dbt_project.yml), a column its
    contract requires but the table still allows null in gets its NOT NULL (DuckDB checks the rows already there:
    a null among them fails the run and names the column). One query over information_schema per incremental
    contracted model; nothing to alter once the table has its constraints. A pre-hook, not an on-run-start hook:
    a project hook ran (and opened the warehouse) in every dbt command, compile and test included. -#}
{%- macro enforce_not_null_constraints() -%}
    {%- if execute and flags.WHICH in ('run', 'build')
        and model.resource_type == 'model'
        and model.config.materialized == 'incremental'
        and model.config.contract.enforced -%}
        {%- set required = [] -%}
        {%- for column in model.columns.values() -%}
            {%- if column.constraints | selectattr('type', 'equalto', 'not_null') | list -%}
                {%- do required.append(column.name) -%}
            {%- endif -%}
        {%- endfor -%}
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
