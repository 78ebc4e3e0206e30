{{
    config(
        materialized='incremental',
        partition_by=day_partitions('activity_date'),
        incremental_strategy='append',
        pre_hook="{{ delete_reprocessed('activity_date') }}",
    )
}}
-- One row per landed day and lifecycle segment: how many users were in the segment at the start of the day
-- (the lifecycle rules over user_features as of that day) and the orders and revenue they placed that day
-- (users who signed up during the day: new).
-- The daily history segment_forecasts learns from. Incremental by day: a run rebuilds its re-processed days.
with

landed as (
    {{ newest_landed_day() }}
),

segments as (
    select
        features.user_id,
        features.as_of_date as activity_date,
        {{ lifecycle_segment() }} as lifecycle_segment
    from {{ ref('user_features') }} as features
    cross join landed
    where {{ in_reprocess_window('features.as_of_date') }} and features.as_of_date <= landed.newest_event_date
),

user_days as (
    -- Only days with features: a day retention dropped from user_features has no segments to count in.
    select user_id, activity_date, count_orders, sum_revenue
    from {{ ref('int_user_days_aggregated') }}
    where {{ in_reprocess_window('activity_date') }}
      and activity_date in (select distinct activity_date from segments)
),

-- A user who signs up during the day is not in that day's features yet: their first day's orders count as new.
joined as (
    select
        coalesce(segments.activity_date, user_days.activity_date) as activity_date,
        coalesce(segments.lifecycle_segment, 'new') as lifecycle_segment,
        segments.user_id is not null as was_known,
        user_days.count_orders,
        user_days.sum_revenue
    from segments
    full outer join user_days using (user_id, activity_date)
)

select
    activity_date,
    lifecycle_segment,
    count(*) filter (where was_known) as n_users,
    count(*) filter (where count_orders > 0) as n_buyers,
    cast(coalesce(sum(count_orders), 0) as bigint) as count_orders,
    cast(coalesce(sum(sum_revenue), 0) as double) as sum_revenue
from joined
group by 1, 2
