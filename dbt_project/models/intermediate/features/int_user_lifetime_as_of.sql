{{
    config(
        materialized='incremental',
        partition_by=day_partitions('as_of_date'),
        unique_key='as_of_date',
        incremental_strategy=replace_days_strategy(),
        post_hook="{{ keep_lifetime_checkpoint_only() }}",
    )
}}
-- Each user's lifetime totals as of a date: their newest user-day strictly before the date, with its running
-- totals (int_user_days_aggregated). One row per user with activity before the date, for the run's as-of dates
-- (user_features reads them) and for the run's first re-processed day, the checkpoint the next run starts from.
-- Cost by users, not history: a run continues the newest kept checkpoint with the user-days since. Only without
-- one (a first build, a full refresh, a rerun before the checkpoint) does it read every earlier user-day once.
-- int_user_days_aggregated drops the checkpoints after the days it re-processes (their totals may change).
{%- set checkpoint = reprocess_from() if date_var('as_of_start') else none %}
{%- set lifetime_columns = lifetime_columns() %}
{#- The newest kept checkpoint no re-processed day can have changed: on or before the run's first one. -#}
{%- set continue_from = newest_lifetime_checkpoint(checkpoint) if is_incremental() else none %}
with

dates as (
    select as_of_date from {{ ref('int_as_of_dates') }}
    {%- if checkpoint %}
    union
    select {{ checkpoint }}
    {%- endif %}
),

-- Each user's totals before the newest date: the kept checkpoint and the user-days since it, else every
-- user-day before that date (macros/lifetime_checkpoints.sql).
candidates as ({{ lifetime_rows_before(ref('int_user_days_aggregated'), '(select max(as_of_date) from dates)', this, continue_from) }}
),

user_dates as (
    select users.user_id, dates.as_of_date
    from (select distinct user_id from candidates) as users
    cross join dates
)

-- The newest candidate strictly before each date; users with none before it get no row.
{{ newest_row_before('user_dates', 'as_of_date', 'candidates', 'activity_date', 'user_id', ['activity_date'] + lifetime_columns) }}
