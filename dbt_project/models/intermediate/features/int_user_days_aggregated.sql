{{
    config(
        materialized='incremental',
        partition_by=day_partitions('activity_date'),
        incremental_strategy='append',
        pre_hook=["{{ delete_reprocessed('activity_date') }}", "{{ drop_stale_lifetime_checkpoints() }}"],
    )
}}
-- One row per user per day with any clean event (by the event's own timestamp), with lifetime totals up to
-- and including that day (the features take them with an as-of join on days strictly before the as-of date).
-- Incremental by day: the re-processed days' totals continue each user's newest earlier row. A full
-- refresh has no earlier rows and gives the same totals.
with

sessions as (
    select * from {{ ref('int_sessions_aggregated') }}
    where {{ in_reprocess_window('activity_date') }}
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
        sum(count_searches) as count_searches,
        sum(count_favourites) as count_favourites,
        count(*) filter (where has_cart) as count_cart_sessions,
        count(*) filter (where has_cart and not has_purchase) as count_abandoned_cart_sessions,
        array_sort(array_distinct(flatten(array_agg(categories)))) as categories
    from sessions
    group by 1, 2
),

-- Each user's running totals before the re-processed days: their newest earlier row (the pre-hook has already
-- removed the days being rebuilt). From the newest lifetime checkpoint and the rows since (a few days), or
-- without one from the user's whole history (macros/lifetime_checkpoints.sql).
earlier as (
    {% if is_incremental() -%}
    {%- set checkpoint = newest_lifetime_checkpoint(reprocess_from()) %}
    select
        user_id,
        {%- for column in lifetime_columns() %}
        {{ value_at_newest(column, 'activity_date') }} as {{ column }}{{ ',' if not loop.last }}
        {%- endfor %}
    from ({{ lifetime_rows_before(this, reprocess_from(), lifetime_checkpoints(), checkpoint) }}
    )
    where user_id in (select user_id from daily)
    group by user_id
    {%- else -%}
    select
        cast(null as bigint) as user_id,
        {%- for column in ['sessions', 'carts', 'views', 'orders', 'coupon_orders', 'sum_purchase_gap_days',
                           'sum_sq_purchase_gap_days'] %}
        cast(null as {{ lifetime_count_type() }}) as lifetime_{{ column }},
        {%- endfor %}
        cast(null as decimal(38, 2)) as lifetime_revenue,
        cast(null as bigint) as lifetime_purchase_days,
        {%- for column in ['first_activity', 'first_purchase', 'last_view', 'last_cart', 'last_purchase'] %}
        cast(null as date) as {{ column }}_date{{ ',' if not loop.last }}
        {%- endfor %}
    where false
    {%- endif %}
),

with_earlier as (
    select
        daily.*,
        earlier.lifetime_sessions as earlier_sessions,
        earlier.lifetime_carts as earlier_carts,
        earlier.lifetime_views as earlier_views,
        earlier.lifetime_orders as earlier_orders,
        earlier.lifetime_revenue as earlier_revenue,
        earlier.lifetime_coupon_orders as earlier_coupon_orders,
        earlier.lifetime_purchase_days as earlier_purchase_days,
        earlier.lifetime_sum_purchase_gap_days as earlier_sum_gap,
        earlier.lifetime_sum_sq_purchase_gap_days as earlier_sum_sq_gap,
        earlier.first_activity_date as earlier_first_activity_date,
        earlier.first_purchase_date as earlier_first_purchase_date,
        earlier.last_view_date as earlier_last_view_date,
        earlier.last_cart_date as earlier_last_cart_date,
        earlier.last_purchase_date as earlier_last_purchase_date
    from daily
    left join earlier using (user_id)
),

-- Inter-purchase gaps, in days, between consecutive days with a purchase.
with_purchase_gap as (
    select
        *,
        case when count_orders > 0 then {{ days_between('coalesce(
            max(case when count_orders > 0 then activity_date end) over (
                partition by user_id order by activity_date rows between unbounded preceding and 1 preceding
            ),
            earlier_last_purchase_date
        )', 'activity_date') }} end as purchase_gap_days
    from with_earlier
),

-- Earlier totals plus the running sums; a sum over no values stays null, as in a full build.
with_lifetime as (
    select
        * except (
            earlier_sessions, earlier_carts, earlier_views, earlier_orders, earlier_revenue, earlier_coupon_orders,
            earlier_purchase_days, earlier_sum_gap, earlier_sum_sq_gap, earlier_first_activity_date,
            earlier_first_purchase_date, earlier_last_view_date, earlier_last_cart_date, earlier_last_purchase_date
        ),
        cast(coalesce(earlier_sessions, 0) + sum(count_sessions) over lifetime as {{ lifetime_count_type() }}) as lifetime_sessions,
        cast(coalesce(earlier_carts, 0) + sum(count_carts) over lifetime as {{ lifetime_count_type() }}) as lifetime_carts,
        cast(coalesce(earlier_views, 0) + sum(count_views) over lifetime as {{ lifetime_count_type() }}) as lifetime_views,
        cast(coalesce(earlier_orders, 0) + sum(count_orders) over lifetime as {{ lifetime_count_type() }}) as lifetime_orders,
        cast(coalesce(earlier_revenue, 0) + sum(sum_revenue) over lifetime as decimal(38, 2)) as lifetime_revenue,
        cast(coalesce(earlier_coupon_orders, 0) + sum(count_coupon_orders) over lifetime as {{ lifetime_count_type() }})
            as lifetime_coupon_orders,
        cast(coalesce(earlier_purchase_days, 0) + sum(case when count_orders > 0 then 1 else 0 end) over lifetime as bigint)
            as lifetime_purchase_days,
        cast(coalesce(earlier_sum_gap + sum(purchase_gap_days) over lifetime, earlier_sum_gap,
            sum(purchase_gap_days) over lifetime) as {{ lifetime_count_type() }}) as lifetime_sum_purchase_gap_days,
        cast(coalesce(earlier_sum_sq_gap + sum(purchase_gap_days * purchase_gap_days) over lifetime, earlier_sum_sq_gap,
            sum(purchase_gap_days * purchase_gap_days) over lifetime) as {{ lifetime_count_type() }}) as lifetime_sum_sq_purchase_gap_days,
        coalesce(earlier_first_activity_date, min(activity_date) over lifetime) as first_activity_date,
        coalesce(earlier_first_purchase_date, min(case when count_orders > 0 then activity_date end) over lifetime)
            as first_purchase_date,
        coalesce(max(case when count_views > 0 then activity_date end) over lifetime, earlier_last_view_date)
            as last_view_date,
        coalesce(max(case when count_carts > 0 then activity_date end) over lifetime, earlier_last_cart_date)
            as last_cart_date,
        coalesce(max(case when count_orders > 0 then activity_date end) over lifetime, earlier_last_purchase_date)
            as last_purchase_date
    from with_purchase_gap
    window lifetime as (partition by user_id order by activity_date rows between unbounded preceding and current row)
)

select * from with_lifetime
