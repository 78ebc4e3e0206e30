{#- The few places DuckDB's SQL and Spark's differ (SHOP_ENGINE; profiles.yml targets `local` and `spark`). Every
    model has one copy; what differs is rendered here, through adapter.dispatch. -#}


{#- A source is a folder of Parquet files the pipeline wrote (models/staging/landing/_sources.yml): its meta gives
    `location` (a folder of `name=value` partitions when `partitioned`, else a file or a pattern), and each engine
    reads it in place. builtins.source keeps the lineage; the returned SQL is what the engine reads. -#}
{%- macro source(source_name, table_name) -%}
    {%- set relation = builtins.source(source_name, table_name) -%}
    {%- if not execute -%}
        {{ return(relation) }}
    {%- endif -%}
    {%- set node = graph.sources.values() | selectattr('source_name', 'equalto', source_name)
        | selectattr('name', 'equalto', table_name) | first -%}
    {%- if 'location' not in node.meta -%}
        {{ return(relation) }}
    {%- endif -%}
    {{ return(adapter.dispatch('read_files')(node.meta.location, node.meta.get('partitioned', false))) }}
{%- endmacro -%}

{%- macro default__read_files(location, partitioned) -%}
    {%- if partitioned -%}
        read_parquet('{{ location }}/*/*.parquet', hive_partitioning = true, union_by_name = true)
    {%- else -%}
        read_parquet('{{ location }}', union_by_name = true)
    {%- endif -%}
{%- endmacro -%}

{#- Spark discovers `name=value` folders as partition columns itself, and merges the files' schemas
    (spark.sql.parquet.mergeSchema in the profile, as union_by_name does on DuckDB). -#}
{%- macro spark__read_files(location, partitioned) -%}
    parquet.`{{ location }}`
{%- endmacro -%}

{#- Lifetime counts: DuckDB sums bigints into hugeints, the type existing warehouses' tables have; Spark's longest
    integer is a bigint (a count past 9.2e18 is not a concern). -#}
{%- macro lifetime_count_type() -%}
    {{ return(adapter.dispatch('lifetime_count_type')()) }}
{%- endmacro -%}

{%- macro default__lifetime_count_type() -%}hugeint{%- endmacro -%}

{%- macro spark__lifetime_count_type() -%}bigint{%- endmacro -%}

{#- One row per element of a list column (in a select list). -#}
{%- macro explode_list(column) -%}
    {{ return(adapter.dispatch('explode_list')(column)) }}
{%- endmacro -%}

{%- macro default__explode_list(column) -%}unnest({{ column }}){%- endmacro -%}

{%- macro spark__explode_list(column) -%}explode({{ column }}){%- endmacro -%}

{#- A select of one row per day from `start` to `end` (ISO dates, inclusive), as column `name`. -#}
{%- macro every_day(start, end, name) -%}
    {{ return(adapter.dispatch('every_day')(start, end, name)) }}
{%- endmacro -%}

{%- macro default__every_day(start, end, name) -%}
    select cast(range as date) as {{ name }}
    from range(date '{{ start }}', date '{{ end }}' + interval 1 day, interval 1 day)
{%- endmacro -%}

{%- macro spark__every_day(start, end, name) -%}
    select explode(sequence(date '{{ start }}', date '{{ end }}', interval 1 day)) as {{ name }}
{%- endmacro -%}

{#- Incremental tables are rebuilt by whole days. DuckDB deletes the rows of the days being rebuilt; Spark's Parquet
    tables cannot delete rows, so there each is partitioned by its day column and the days are dropped as
    partitions (the same rows go: every condition here names the day column only). -#}

{#- The model's `partition_by`: its day column on Spark; none on DuckDB (which would only warn about it). -#}
{%- macro day_partitions(column) -%}
    {{ return(column if target.type == 'spark' else none) }}
{%- endmacro -%}

{#- delete+insert on the day column: on Spark an insert that overwrites the days the new rows carry (dynamic
    partition overwrite), which is the same replacement. -#}
{%- macro replace_days_strategy() -%}
    {{ return('insert_overwrite' if target.type == 'spark' else 'delete+insert') }}
{%- endmacro -%}

{#- The statement removing `relation`'s rows whose day `column` meets `condition` (empty on Spark when there are none). -#}
{%- macro delete_days(relation, column, condition='true') -%}
    {{ return(adapter.dispatch('delete_days')(relation, column, condition)) }}
{%- endmacro -%}

{%- macro default__delete_days(relation, column, condition) -%}
    delete from {{ relation }} where {{ condition }}
{%- endmacro -%}

{%- macro spark__delete_days(relation, column, condition) -%}
    {%- if execute -%}
        {%- set days = run_query('select distinct cast(' ~ column ~ ' as string) from ' ~ relation
            ~ ' where ' ~ column ~ ' is not null and (' ~ condition ~ ')') -%}
        {%- if days.rows | length > 0 -%}
            alter table {{ relation }} drop if exists
            {%- for row in days.rows %} partition ({{ column }} = date '{{ row[0] }}'){{ ',' if not loop.last }}{%- endfor %}
        {%- endif -%}
    {%- endif -%}
{%- endmacro -%}

{#- Whole days from date `start` to date `end` (SQL expressions): DuckDB subtracts dates into days, Spark into an
    interval. Not dbt.datediff: on Spark it fails a query on the first null date, and recency features are null
    for users without that activity. -#}
{%- macro days_between(start, end) -%}
    {{ return(adapter.dispatch('days_between')(start, end)) }}
{%- endmacro -%}

{%- macro default__days_between(start, end) -%}({{ end }} - {{ start }}){%- endmacro -%}

{%- macro spark__days_between(start, end) -%}datediff({{ end }}, {{ start }}){%- endmacro -%}

{#- `value` on the row with the newest `order_by`, null values included (an aggregate). -#}
{%- macro value_at_newest(value, order_by) -%}
    {{ return(adapter.dispatch('value_at_newest')(value, order_by)) }}
{%- endmacro -%}

{%- macro default__value_at_newest(value, order_by) -%}arg_max_null({{ value }}, {{ order_by }}){%- endmacro -%}

{%- macro spark__value_at_newest(value, order_by) -%}max_by({{ value }}, {{ order_by }}){%- endmacro -%}

{#- For each row of `left` (`key`, `left_date`): `left_date`, `key` and `columns` of the `right` row with the same key
    and the newest `right_date` strictly before it; left rows with none get no row. DuckDB's as-of join; on Spark
    the newest of the earlier rows by a window. -#}
{%- macro newest_row_before(left, left_date, right, right_date, key, columns) -%}
    {{ return(adapter.dispatch('newest_row_before')(left, left_date, right, right_date, key, columns)) }}
{%- endmacro -%}

{%- macro default__newest_row_before(left, left_date, right, right_date, key, columns) -%}
select
    {{ left }}.{{ left_date }},
    {{ left }}.{{ key }},
    {%- for column in columns %}
    {{ right }}.{{ column }}{{ ',' if not loop.last }}
    {%- endfor %}
from {{ left }}
asof join {{ right }}
    on {{ left }}.{{ key }} = {{ right }}.{{ key }}
    and {{ left }}.{{ left_date }} > {{ right }}.{{ right_date }}
{%- endmacro -%}

{%- macro spark__newest_row_before(left, left_date, right, right_date, key, columns) -%}
select {{ left_date }}, {{ key }}, {{ columns | join(', ') }}
from (
    select
        {{ left }}.{{ left_date }},
        {{ left }}.{{ key }},
        {%- for column in columns %}
        {{ right }}.{{ column }},
        {%- endfor %}
        row_number() over (
            partition by {{ left }}.{{ key }}, {{ left }}.{{ left_date }} order by {{ right }}.{{ right_date }} desc
        ) as newest
    from {{ left }}
    inner join {{ right }}
        on {{ left }}.{{ key }} = {{ right }}.{{ key }}
        and {{ left }}.{{ left_date }} > {{ right }}.{{ right_date }}
)
where newest = 1
{%- endmacro -%}

{#- The ISO day of the week of a date: Monday 1 .. Sunday 7. -#}
{%- macro iso_weekday(column) -%}
    {{ return(adapter.dispatch('iso_weekday')(column)) }}
{%- endmacro -%}

{%- macro default__iso_weekday(column) -%}isodow({{ column }}){%- endmacro -%}

{%- macro spark__iso_weekday(column) -%}(weekday({{ column }}) + 1){%- endmacro -%}

{#- `dbt run-operation drop_table_if_exists --args '{name: ...}'`: drop a table of the target's schema on any engine
    (ml.warehouse.builds, before a history rebuild). -#}
{%- macro drop_table_if_exists(name) -%}
    {%- set relation = adapter.get_relation(target.database, target.schema, name) -%}
    {%- if relation is not none -%}
        {%- do adapter.drop_relation(relation) -%}
        {%- do log('dropped ' ~ relation, info=true) -%}
    {%- endif -%}
{%- endmacro -%}
