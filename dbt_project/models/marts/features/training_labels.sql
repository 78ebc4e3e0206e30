{{
    config(
        materialized='incremental',
        partition_by=day_partitions('as_of_date'),
        incremental_strategy='append',
        pre_hook="{{ delete_reprocessed('as_of_date', var('label_horizon_days') - 1) }}",
        post_hook="{{ apply_feature_retention(ref('user_features')) }}",
    )
}}
-- One row per user per as_of_date whose 30-day label window [T, T + 30) has fully landed.
-- Incremental: a run rebuilds only the labels whose window reaches a re-processed day.
-- purchase_30d: any clean purchase in the window.
-- churn_30d: for users active in the 30 days before T only (null otherwise): no activity in the window.
with

features as (
    select user_id, as_of_date, days_since_last_activity
    from {{ ref('user_features') }}
    where {{ in_reprocess_window('as_of_date', var('label_horizon_days') - 1) }}
),

user_days as (
    select user_id, activity_date, count_orders
    from {{ ref('int_user_days_aggregated') }}
    where {{ in_reprocess_window('activity_date', var('label_horizon_days') - 1, end_days_before=0) }}
),

landed as (
    {{ newest_landed_day() }}
),

matured as (
    select features.*
    from features
    cross join landed
    where {{ is_matured('features.as_of_date', var('label_horizon_days')) }}
),

outcomes as (
    select
        matured.user_id,
        matured.as_of_date,
        coalesce(matured.days_since_last_activity <= 30, false) as is_recently_active,
        count(user_days.activity_date) > 0 as is_active_in_window,
        coalesce(sum(user_days.count_orders), 0) > 0 as has_purchase_in_window
    from matured
    left join user_days
        on matured.user_id = user_days.user_id
        and user_days.activity_date >= matured.as_of_date
        and user_days.activity_date < matured.as_of_date + {{ var('label_horizon_days') }}
    group by 1, 2, 3
),

labels as (
    select
        user_id,
        as_of_date,
        is_recently_active,
        cast(has_purchase_in_window as integer) as purchase_30d,
        case when is_recently_active then cast(not is_active_in_window as integer) end as churn_30d
    from outcomes
)

select * from labels
