{{
    config(
        materialized='incremental',
        partition_by=day_partitions('as_of_date'),
        incremental_strategy='append',
        pre_hook="{{ delete_reprocessed('as_of_date', var('label_horizon_days') - 1) }}",
        on_schema_change='append_new_columns',
    )
}}
-- One row per targeted or held-out user per as_of_date (send date) with what happened next: purchases
-- and revenue in the 7- and 30-day windows from the send date, and the discount actually paid on orders
-- that redeemed the sent coupon in its 7-day validity. is_matured_7d / is_matured_30d say whether a
-- window has fully landed. pre_send_revenue: what the user spent in the pre_send_days before the send, the
-- covariate coupon_results and the policy gate adjust by (fixed before the send, so the coupon cannot move it);
-- a warehouse built before it existed gains the column (append_new_columns), null on its older rows.
-- Incremental: a run rebuilds only the send dates whose 30-day window reaches a re-processed day (their
-- outcomes and maturity can change); older send dates are final. A history rebuild (ml history) drops
-- the table, so the next targeting build recomputes every send from the rebuilt events.
with

targets as (
    select as_of_date, user_id, policy, is_holdout, coupon_code, expected_cost, arm_budget
    from {{ ref('coupon_targets') }}
    where {{ in_reprocess_window('as_of_date', var('label_horizon_days') - 1) }}
),

user_days as (
    select user_id, activity_date, count_orders, sum_revenue
    from {{ ref('int_user_days_aggregated') }}
    where {{ in_reprocess_window(
        'activity_date', var('label_horizon_days') - 1 + var('pre_send_days'), end_days_before=0) }}
),

landed as (
    {{ newest_landed_day() }}
),

-- Orders that used a coupon, with the discount it cost (catalogue rules on the order's value).
redemption_costs as (
    {{ redemption_costs(var('label_horizon_days') - 1) }}
),

windows as (
    select
        targets.as_of_date,
        targets.user_id,
        coalesce(sum(user_days.count_orders) filter (
            where user_days.activity_date >= targets.as_of_date
              and user_days.activity_date < targets.as_of_date + {{ var('coupon_window_days') }}), 0) as orders_7d,
        coalesce(sum(user_days.sum_revenue) filter (
            where user_days.activity_date >= targets.as_of_date
              and user_days.activity_date < targets.as_of_date + {{ var('coupon_window_days') }}), 0) as revenue_7d,
        coalesce(sum(user_days.count_orders) filter (where user_days.activity_date >= targets.as_of_date), 0)
            as orders_30d,
        coalesce(sum(user_days.sum_revenue) filter (where user_days.activity_date >= targets.as_of_date), 0)
            as revenue_30d,
        coalesce(sum(user_days.sum_revenue) filter (where user_days.activity_date < targets.as_of_date), 0)
            as pre_send_revenue
    from targets
    left join user_days
        on targets.user_id = user_days.user_id
        and user_days.activity_date >= targets.as_of_date - {{ var('pre_send_days') }}
        and user_days.activity_date < targets.as_of_date + {{ var('label_horizon_days') }}
    group by 1, 2
),

costs as (
    select
        targets.as_of_date,
        targets.user_id,
        coalesce(sum(redemption_costs.discount_paid), 0) as coupon_cost_7d
    from targets
    left join redemption_costs
        on targets.user_id = redemption_costs.user_id
        and targets.coupon_code = redemption_costs.coupon_code
        and not targets.is_holdout
        and redemption_costs.order_date >= targets.as_of_date
        and redemption_costs.order_date < targets.as_of_date + {{ var('coupon_window_days') }}
    group by 1, 2
),

outcomes as (
    select
        targets.*,
        {{ is_matured('targets.as_of_date', var('coupon_window_days')) }} as is_matured_7d,
        {{ is_matured('targets.as_of_date', var('label_horizon_days')) }} as is_matured_30d,
        cast(windows.pre_send_revenue as double) as pre_send_revenue,
        cast(windows.orders_7d > 0 as integer) as has_purchase_7d,
        cast(windows.revenue_7d as double) as revenue_7d,
        cast(windows.orders_30d > 0 as integer) as has_purchase_30d,
        cast(windows.revenue_30d as double) as revenue_30d,
        cast(costs.coupon_cost_7d as double) as coupon_cost_7d
    from targets
    cross join landed
    inner join windows using (as_of_date, user_id)
    inner join costs using (as_of_date, user_id)
)

select * from outcomes
