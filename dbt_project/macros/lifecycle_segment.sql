{#- The lifecycle rules (first match wins; user_segments.yml), over columns of user_features: the segments of
    user_segments and the daily series segment_forecasts learns from read them from here. -#}
{%- macro lifecycle_segment() -%}
        case
            when days_since_last_activity is null or days_since_last_activity > 180 then 'lost'
            when tenure_days < 30 then 'new'
            when count_purchases_90d >= 3 and days_since_last_purchase <= 30 then 'loyal'
            when days_since_last_activity <= 30 then 'active'
            when days_since_last_activity <= 90 then 'at_risk'
            else 'hibernating'
        end
{%- endmacro -%}
