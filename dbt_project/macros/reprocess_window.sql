{#- Incremental by day. A run re-processes event days from `reprocess_from` on: the models over events and
    user-days delete their rows from that day on (the pre-hook) and rebuild them from the landed events.
    Python sets the var (ml.warehouse.builds.reprocess_start): the business day minus SHOP_LATE_EVENT_DAYS, any
    earlier day the landing changed, and any landed day no run has processed yet. Without it (dbt by hand)
    an as-of run re-processes `late_event_days` before its as-of date, and a run without dates everything.
    Every day from the start on is rebuilt, not only the run's own: lifetime totals and duplicate checks
    carry forward, so a rerun of a past day stays consistent with the days after it. A full refresh (or
    a first build) reads every day.
    The history build (ml.warehouse.builds.build_feature_history) also sets `reprocess_to`: it builds the days in
    order, a batch at a time, so memory is bounded by a batch, not by the history. -#}
{%- macro reprocess_from() -%}
    {%- set start = date_var('reprocess_from') -%}
    {%- set as_of_start = date_var('as_of_start') -%}
    {%- if start -%}
        date '{{ start }}'
    {%- elif as_of_start -%}
        (date '{{ as_of_start }}' - {{ 1 + int_var('late_event_days') }})
    {%- endif -%}
{%- endmacro -%}


{#- The last event day of a history batch (var `reprocess_to`); empty when the run goes to the newest day. -#}
{%- macro reprocess_to() -%}
    {%- set end = date_var('reprocess_to') -%}
    {%- if end -%}
        date '{{ end }}'
    {%- endif -%}
{%- endmacro -%}


{#- True for rows this run re-processes: `column` (a date) on or after the start, less `days_before` for
    windows that reach forward from their date (a label's 30 days, a coupon's 7), and on or before the
    batch's last day less `end_days_before` (default `days_before`: the windows that end in the batch).
    The start applies to incremental runs only (a full refresh reads from the first day); the end always. -#}
{%- macro in_reprocess_window(column, days_before=0, end_days_before=none) -%}
    {%- set start = reprocess_from() -%}
    {%- set end = reprocess_to() -%}
    {%- set end_days_before = days_before if end_days_before is none else end_days_before -%}
    {%- set bounds = [] -%}
    {%- if is_incremental() and start -%}
        {%- do bounds.append(column ~ ' >= ' ~ start ~ ' - ' ~ days_before) -%}
    {%- endif -%}
    {%- if end -%}
        {%- do bounds.append(column ~ ' <= ' ~ end ~ ' - ' ~ end_days_before) -%}
    {%- endif -%}
    {{ bounds | join(' and ') if bounds else 'true' }}
{%- endmacro -%}


{#- Pre-hook of the models incremental by day: empty the days being rebuilt, in the build's transaction. -#}
{%- macro delete_reprocessed(column, days_before=0) -%}
    {%- if is_incremental() -%}
        {{ delete_days(this, column, in_reprocess_window(column, days_before)) }}
    {%- endif -%}
{%- endmacro -%}
