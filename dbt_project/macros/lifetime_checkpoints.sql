{#- int_user_lifetime_as_of keeps each user's lifetime totals as of a run's first re-processed day (the
    checkpoint), so the next run reads the user-days since it, not the whole history. A checkpoint stays valid
    while no user-day before it is rebuilt: int_user_days_aggregated drops the ones after the days it
    re-processes (every one on a full rebuild), in the same step that deletes those days. -#}
{%- macro drop_stale_lifetime_checkpoints() -%}
    {%- set checkpoints = adapter.get_relation(this.database, this.schema, 'int_user_lifetime_as_of') if execute else none -%}
    {%- if checkpoints -%}
        delete from {{ checkpoints }}
        {%- if is_incremental() and reprocess_from() %} where as_of_date > {{ reprocess_from() }}{% endif %}
    {%- endif -%}
{%- endmacro -%}


{#- Post-hook of int_user_lifetime_as_of: keep the run's checkpoint and as-of dates, drop the older ones (a rerun
    before the checkpoint reads the history once instead). -#}
{%- macro keep_lifetime_checkpoint_only() -%}
    delete from {{ this }} where as_of_date < {{ reprocess_from() if var('as_of_start') else '(select max(as_of_date) from ' ~ ref('int_as_of_dates') ~ ')' }}
{%- endmacro -%}
