{#-
    The matured-window rule, written once for labels (label_horizon_days), campaign outcomes and the send lists'
    outcomes (coupon_window_days): a window [start, start + N days) has matured when every one of its days has
    landed, i.e. start + N <= the newest landed event day + 1. `newest_landed_day()` is the one-row CTE body
    (`landed`) the condition reads.
-#}
{% macro newest_landed_day() -%}
    select max(event_date) as newest_event_date
    from {{ ref('stg_landing__events') }}
{%- endmacro %}

{% macro is_matured(window_start, window_days) -%}
    {{ window_start }} + {{ window_days }} <= landed.newest_event_date + 1
{%- endmacro %}
