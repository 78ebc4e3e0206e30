{#- int_user_lifetime_as_of keeps each user's lifetime totals as of a run's first re-processed day (the
    checkpoint), so the next run reads the user-days since it, not the whole history. A checkpoint stays valid
    while no user-day before it is rebuilt: int_user_days_aggregated drops the ones after the days it
    re-processes (every one on a full rebuild), in the same step that deletes those days.
    int_user_days_aggregated also reads the checkpoint before its re-processed days for the totals it continues.
    That read is a cache, not a dependency (the checkpoints are built after it): without one it reads its own
    history, with the same result. -#}

{#- The checkpoints' table; none before it is first built. -#}
{%- macro lifetime_checkpoints() -%}
    {{ return(adapter.get_relation(this.database, this.schema, 'int_user_lifetime_as_of') if execute else none) }}
{%- endmacro -%}


{#- The newest checkpoint on or before `day` (a SQL date expression), or none. -#}
{%- macro newest_lifetime_checkpoint(day) -%}
    {%- set checkpoints = lifetime_checkpoints() -%}
    {%- if checkpoints and day -%}
        {%- set found = run_query('select max(as_of_date) from ' ~ checkpoints ~ ' where as_of_date <= ' ~ day) -%}
        {{ return(found.columns[0].values()[0]) }}
    {%- endif -%}
    {{ return(none) }}
{%- endmacro -%}


{#- The columns a checkpoint carries: everything a user's newest user-day passes on to later days. -#}
{%- macro lifetime_columns() -%}
    {{ return([
        'lifetime_sessions', 'lifetime_views', 'lifetime_carts', 'lifetime_orders', 'lifetime_revenue',
        'lifetime_coupon_orders', 'lifetime_purchase_days', 'lifetime_sum_purchase_gap_days',
        'lifetime_sum_sq_purchase_gap_days', 'first_activity_date', 'first_purchase_date', 'last_view_date',
        'last_cart_date', 'last_purchase_date']) }}
{%- endmacro -%}


{#- The rows holding each user's lifetime totals before `before` (a SQL date expression; none: no bound): the
    checkpoint of `checkpoint_day` in `checkpoints` and the user-days of `user_days` since it, else every user-day
    before `before`. A user's newest row among them carries their totals (arg_max_null, or an as-of join for
    several dates). Both int_user_days_aggregated and int_user_lifetime_as_of continue a checkpoint this way. -#}
{%- macro lifetime_rows_before(user_days, before, checkpoints=none, checkpoint_day=none) -%}
    {%- if checkpoint_day %}
    select user_id, activity_date, {{ lifetime_columns() | join(', ') }}
    from {{ checkpoints }}
    where as_of_date = date '{{ checkpoint_day }}'
    union all
    {%- endif %}
    select user_id, activity_date, {{ lifetime_columns() | join(', ') }}
    from {{ user_days }}
    where true
        {%- if checkpoint_day %} and activity_date >= date '{{ checkpoint_day }}'{% endif %}
        {%- if before %} and activity_date < {{ before }}{% endif %}
{%- endmacro -%}


{#- Pre-hook of int_user_days_aggregated: drop the checkpoints after its first re-processed day. -#}
{%- macro drop_stale_lifetime_checkpoints() -%}
    {%- set checkpoints = lifetime_checkpoints() -%}
    {%- if checkpoints -%}
        {{ delete_days(checkpoints, 'as_of_date', 'as_of_date > ' ~ reprocess_from() if is_incremental() and reprocess_from() else 'true') }}
    {%- endif -%}
{%- endmacro -%}


{#- Post-hook of int_user_lifetime_as_of: keep the run's checkpoint and as-of dates, drop the older ones (a rerun
    before the checkpoint reads the history once instead). -#}
{%- macro keep_lifetime_checkpoint_only() -%}
    {{ delete_days(this, 'as_of_date', 'as_of_date < ' ~ (reprocess_from() if date_var('as_of_start') else '(select max(as_of_date) from ' ~ ref('int_as_of_dates') ~ ')')) }}
{%- endmacro -%}
