{{
    config(
        materialized='incremental',
        partition_by=day_partitions('send_date'),
        incremental_strategy='append',
        pre_hook="{{ delete_reprocessed('send_date', var('coupon_window_days') - 1) }}",
    )
}}
-- One row per user per randomised campaign send whose 7-day coupon window [send_date, send_date + 7) has
-- fully landed: who was treated with which coupon, and whether they bought in the window. This is the
-- experiment the coupon effect models learn from and the targeting policies are judged on (coupon_cost_7d:
-- the discount paid on orders that redeemed the campaign's coupon in its window); features come from user_features as of the send date
-- (sends go out in the morning, so features as of that date see only earlier days).
-- Incremental: a run rebuilds only the sends whose window reaches a re-processed day.
with

sends as (
    -- The group decides who was treated; a control row's code (if the shop exports one) was never sent.
    select campaign_id, user_id, send_date, is_treatment, case when is_treatment then coupon_code end as coupon_code
    from {{ ref('stg_landing__coupon_sends') }}
),

-- A campaign counts as randomised only if it kept a control group.
randomised_campaigns as (
    select campaign_id
    from sends
    group by 1
    having bool_or(is_treatment) and bool_or(not is_treatment)
),

user_days as (
    select user_id, activity_date, count_orders, sum_revenue
    from {{ ref('int_user_days_aggregated') }}
    where {{ in_reprocess_window('activity_date', var('coupon_window_days') - 1, end_days_before=0) }}
),

landed as (
    {{ newest_landed_day() }}
),

redemption_costs as (
    {{ redemption_costs(var('coupon_window_days') - 1) }}
),

matured_sends as (
    select sends.*
    from sends
    inner join randomised_campaigns using (campaign_id)
    cross join landed
    where {{ is_matured('sends.send_date', var('coupon_window_days')) }}
      and {{ in_reprocess_window('sends.send_date', var('coupon_window_days') - 1) }}
),

outcomes as (
    select
        matured_sends.campaign_id,
        matured_sends.send_date,
        matured_sends.user_id,
        matured_sends.is_treatment,
        matured_sends.coupon_code,
        coalesce(sum(user_days.count_orders), 0) > 0 as has_purchase_7d,
        cast(coalesce(sum(user_days.sum_revenue), 0) as double) as revenue_7d
    from matured_sends
    left join user_days
        on matured_sends.user_id = user_days.user_id
        and user_days.activity_date >= matured_sends.send_date
        and user_days.activity_date < matured_sends.send_date + {{ var('coupon_window_days') }}
    group by 1, 2, 3, 4, 5
),

costs as (
    select
        matured_sends.campaign_id,
        matured_sends.user_id,
        coalesce(sum(redemption_costs.discount_paid), 0) as coupon_cost_7d
    from matured_sends
    left join redemption_costs
        on matured_sends.user_id = redemption_costs.user_id
        and matured_sends.coupon_code = redemption_costs.coupon_code
        and redemption_costs.order_date >= matured_sends.send_date
        and redemption_costs.order_date < matured_sends.send_date + {{ var('coupon_window_days') }}
    group by 1, 2
),

outcomes_with_costs as (
    select outcomes.*, cast(costs.coupon_cost_7d as double) as coupon_cost_7d
    from outcomes
    inner join costs using (campaign_id, user_id)
)

select * from outcomes_with_costs
