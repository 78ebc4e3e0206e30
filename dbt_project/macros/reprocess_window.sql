{#- Incremental by day. A run re-processes event days from `reprocess_from` on: the models over events and
    user-days delete their rows from that day on (the pre-hook) and rebuild them from the landed events.
    Python sets the var (ml.warehouse.reprocess_start): the business day minus SHOP_LATE_EVENT_DAYS, any
    earlier day the landing changed, and any landed day no run has processed yet. Without it (dbt by hand)
    an as-of run re-processes `late_event_days` before its as-of date, and a run without dates everything.
    Every day from the start on is rebuilt, not only the run's own: lifetime totals and duplicate checks
    carry forward, so a rerun of a past day stays consistent with the days after it. A full refresh (or
    a first build) reads every day. -#}
{%- macro reprocess_from() -%}
    {%- set start = var('reprocess_from', none) -%}
    {%- set as_of_start = var('as_of_start') -%}
    {%- if start -%}
        date '{{ start }}'
    {%- elif as_of_start -%}
        (date '{{ as_of_start }}' - {{ 1 + var('late_event_days') }})
    {%- endif -%}
{%- endmacro -%}


{#- True for rows this run re-processes: `column` (a date) on or after the start, less `days_before` for
    windows that reach forward from their date (a label's 30 days, a coupon's 7). Always true on a full
    refresh. -#}
{%- macro in_reprocess_window(column, days_before=0) -%}
    {%- set start = reprocess_from() -%}
    {%- if is_incremental() and start -%}
        {{ column }} >= {{ start }} - {{ days_before }}
    {%- else -%}
        true
    {%- endif -%}
{%- endmacro -%}


{#- Pre-hook of the models incremental by day: empty the days being rebuilt, in the build's transaction. -#}
{%- macro delete_reprocessed(column, days_before=0) -%}
    {%- if is_incremental() -%}
        delete from {{ this }} where {{ in_reprocess_window(column, days_before) }}
    {%- endif -%}
{%- endmacro -%}
