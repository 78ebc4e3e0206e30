-- One row per user per day with any clean event (by the event's own timestamp), with lifetime totals up to
-- and including that day (the features take them with an as-of join on days strictly before the as-of date).
with

sessions as (
    select * from {{ ref('int_sessions_aggregated') }}
),

daily as (
    select
        user_id,
        activity_date,
        count(*) as count_sessions,
        sum(count_views) as count_views,
        sum(count_carts) as count_carts,
        sum(count_removes) as count_removes,
        sum(count_orders) as count_orders,
        sum(sum_revenue) as sum_revenue,
        sum(count_coupon_orders) as count_coupon_orders,
        count(*) filter (where has_cart) as count_cart_sessions,
        count(*) filter (where has_cart and not has_purchase) as count_abandoned_cart_sessions,
        list_distinct(flatten(list(categories))) as categories,
    from sessions
    group by 1, 2
),

-- Inter-purchase gaps, in days, between consecutive days with a purchase.
with_purchase_gap as (
    select
        *,
        case when count_orders > 0 then activity_date - max(case when count_orders > 0 then activity_date end) over (
            partition by user_id order by activity_date rows between unbounded preceding and 1 preceding
        ) end as purchase_gap_days,
    from daily
),

with_lifetime as (
    select
        *,
        sum(count_sessions) over lifetime as lifetime_sessions,
        sum(count_carts) over lifetime as lifetime_carts,
        sum(count_views) over lifetime as lifetime_views,
        sum(count_orders) over lifetime as lifetime_orders,
        sum(sum_revenue) over lifetime as lifetime_revenue,
        sum(count_coupon_orders) over lifetime as lifetime_coupon_orders,
        count(*) filter (where count_orders > 0) over lifetime as lifetime_purchase_days,
        sum(purchase_gap_days) over lifetime as lifetime_sum_purchase_gap_days,
        sum(purchase_gap_days * purchase_gap_days) over lifetime as lifetime_sum_sq_purchase_gap_days,
        min(activity_date) over lifetime as first_activity_date,
        min(case when count_orders > 0 then activity_date end) over lifetime as first_purchase_date,
        max(case when count_views > 0 then activity_date end) over lifetime as last_view_date,
        max(case when count_carts > 0 then activity_date end) over lifetime as last_cart_date,
        max(case when count_orders > 0 then activity_date end) over lifetime as last_purchase_date,
    from with_purchase_gap
    window lifetime as (partition by user_id order by activity_date rows between unbounded preceding and current row)
)

select * from with_lifetime
