{% set as_of_start = var('as_of_start') %}
{% set as_of_end = var('as_of_end') or as_of_start %}
-- The as-of dates this run builds: vars as_of_start..as_of_end, or the day after the newest landed day.
with

{% if as_of_start %}
dates as (
    select cast(range as date) as as_of_date
    from range(date '{{ as_of_start }}', date '{{ as_of_end }}' + interval 1 day, interval 1 day)
)
{% else %}
dates as (
    select max(event_date) + 1 as as_of_date
    from {{ ref('stg_landing__events') }}
)
{% endif %}

select * from dates
