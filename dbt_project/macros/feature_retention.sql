{#- Storage that grows by design (var feature_retention_days, SHOP_FEATURE_RETENTION_DAYS). Unset: every
    as-of date of user_features is kept. N: the newest N as-of dates are kept daily (scoring, audit,
    reruns, the newest matured test date); older ones only on Mondays (the weekly training snapshots) and
    on campaign send dates (what the coupon models join to). training_labels keeps the same dates: a label
    without its features is never read. Deleting is monotone (a date once dropped stays dropped as the
    newest date moves on), so batched history, daily runs and one full build keep the same rows. -#}
{%- macro outside_feature_retention(column, features) -%}
    {{ column }} < (select max(as_of_date) from {{ features }}) - {{ var('feature_retention_days') }} + 1
    and isodow({{ column }}) <> 1
    and {{ column }} not in (select distinct send_date from {{ ref('stg_landing__coupon_sends') }})
{%- endmacro -%}


{#- Post-hook of user_features and training_labels: drop the dates retention does not keep. -#}
{%- macro apply_feature_retention(features) -%}
    {%- if var('feature_retention_days') -%}
        delete from {{ this }} where {{ outside_feature_retention('as_of_date', features) }}
    {%- endif -%}
{%- endmacro -%}
