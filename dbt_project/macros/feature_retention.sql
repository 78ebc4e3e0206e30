{#- Storage that grows by design (var feature_retention_days, SHOP_FEATURE_RETENTION_DAYS). Unset: every
    as-of date of user_features is kept. N: the newest N as-of dates are kept daily (scoring, audit,
    reruns, the newest matured test date); older ones only on Mondays (the weekly training snapshots) and
    on campaign send dates (what the coupon models join to). training_labels keeps the same dates: a label
    without its features is never read. Deleting is monotone (a date once dropped stays dropped as the
    newest date moves on), so batched history, daily runs and one full build keep the same rows.
    `newest`: the SQL of the newest as-of date retention counts back from. -#}
{%- macro outside_feature_retention(column, newest) -%}
    {{ column }} < {{ newest }} - {{ int_var('feature_retention_days') }} + 1
    and {{ iso_weekday(column) }} <> 1
    and {{ column }} not in (select distinct send_date from {{ ref('stg_landing__coupon_sends') }})
{%- endmacro -%}


{#- Post-hook of user_features and training_labels: drop the dates retention does not keep. -#}
{%- macro apply_feature_retention(features) -%}
    {%- if int_var('feature_retention_days') -%}
        {{ delete_days(this, 'as_of_date', outside_feature_retention('as_of_date', '(select max(as_of_date) from ' ~ features ~ ')')) }}
    {%- endif -%}
{%- endmacro -%}


{#- int_as_of_dates in a history build (var history_as_of_end: the newest as-of date the build reaches): the
    dates retention would drop once the build ends are not built at all, since nothing reads them before the
    post-hooks delete them. A daily run (var unset) builds its dates and the post-hooks drop what falls out. -#}
{%- macro kept_by_feature_retention(column) -%}
    {%- if int_var('feature_retention_days') and date_var('history_as_of_end') -%}
        not ({{ outside_feature_retention(column, "date '" ~ date_var('history_as_of_end') ~ "'") }})
    {%- else -%}
        true
    {%- endif -%}
{%- endmacro -%}
