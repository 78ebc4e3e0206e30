{#- Required columns are not_null constraints of the model's contract, which dbt writes into the table only when
    it creates it. An incremental table built before a column became required would otherwise never refuse a
    null: before every run, a column the project requires but the warehouse's table still allows null in gets
    its NOT NULL (DuckDB checks the rows already there: a null among them fails the run and names the column).
    One query over information_schema a run; nothing to alter once every table has its constraints. -#}
{%- macro enforce_not_null_constraints() -%}
    {%- if execute and flags.WHICH in ('run', 'build') -%}
        {%- set required = [] -%}
        {%- for node in graph.nodes.values()
            if node.resource_type == 'model'
            and node.config.materialized in ('table', 'incremental')
            and node.config.contract.enforced -%}
            {%- for column in node.columns.values() -%}
                {%- if column.constraints | selectattr('type', 'equalto', 'not_null') | list -%}
                    {%- do required.append((node.alias or node.name) ~ '.' ~ column.name) -%}
                {%- endif -%}
            {%- endfor -%}
        {%- endfor -%}
        {%- set nullable = run_query(
            "select table_name, column_name from information_schema.columns
             where is_nullable = 'YES' and table_schema = '" ~ target.schema ~ "'
               and table_catalog = current_database()"
        ) -%}
        {%- for row in nullable if (row[0] ~ '.' ~ row[1]) in required -%}
            {%- do log("adding the NOT NULL constraint of " ~ row[0] ~ "." ~ row[1], info=true) -%}
            {%- do run_query('alter table "' ~ row[0] ~ '" alter column "' ~ row[1] ~ '" set not null') -%}
        {%- endfor -%}
    {%- endif -%}
{%- endmacro -%}
