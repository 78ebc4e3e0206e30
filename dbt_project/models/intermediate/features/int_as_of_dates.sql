{% set as_of_start = date_var('as_of_start') %}
{% set as_of_end = date_var('as_of_end') or as_of_start %}
-- The as-of dates this run builds: vars as_of_start..as_of_end, or the day after the newest landed day;
-- in a history build with retention set, only the dates retention keeps (macros/feature_retention.sql).
-- depends_on: {{ ref('stg_landing__coupon_sends') }} (read by the retention filter when a history build sets it)
with

{% if as_of_start %}
dates as (
    {{ every_day(as_of_start, as_of_end, 'as_of_date') }}
)
{% else %}
dates as (
    select max(event_date) + 1 as as_of_date
    from {{ ref('stg_landing__events') }}
)
{% endif %}

select * from dates
where {{ kept_by_feature_retention('as_of_date') }}
