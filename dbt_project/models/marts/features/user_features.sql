{{
    config(
        materialized='incremental',
        partition_by=day_partitions('as_of_date'),
        unique_key='as_of_date',
        incremental_strategy=replace_days_strategy(),
        on_schema_change='fail',
        post_hook="{{ apply_feature_retention(this) }}",
    )
}}
-- One row per user per as_of_date for every known user who signed up before that date.
-- Point in time: every feature for as_of_date T uses only events with event_at < T (docs: point_in_time).
with

as_of_dates as (
    select as_of_date from {{ ref('int_as_of_dates') }}
),

users as (
    select user_id, signup_at, signup_date, country, device, has_marketing_consent
    from {{ ref('int_users_resolved') }}
),

{%- set as_of_start = date_var('as_of_start') %}
{%- set as_of_end = date_var('as_of_end') or as_of_start %}
{#- The 90 days before the run's as-of dates (a run for known dates never reads older user-days). The
    bound includes the last as-of date itself: the joins below, not this bound, keep each date's
    features to the days strictly before it (a leaking join must fail the unit and data tests). #}
{%- set in_90_days_before_as_of_dates %}
    {%- if as_of_start %}where activity_date >= date '{{ as_of_start }}' - 90 and activity_date <= date '{{ as_of_end }}'{% endif %}
{%- endset %}

-- The user-days of the 90 days before the run's as-of dates.
user_days as (
    select
        user_id, activity_date, count_sessions, count_views, count_carts, count_orders, sum_revenue,
        count_cart_sessions, count_abandoned_cart_sessions, count_removes, count_searches, count_favourites
    from {{ ref('int_user_days_aggregated') }}
    {{ in_90_days_before_as_of_dates }}
),

treatment_sends as (
    select user_id, send_date
    from {{ ref('stg_landing__coupon_sends') }}
    where is_treatment
),

user_spine as (
    select
        users.user_id,
        as_of_dates.as_of_date,
        users.signup_date,
        users.country,
        users.device,
        users.has_marketing_consent
    from users
    cross join as_of_dates
    where users.signup_at < as_of_dates.as_of_date
),

windowed_activity as (
    select
        user_spine.user_id,
        user_spine.as_of_date,
        {%- for days in [7, 30, 90] %}
        coalesce(sum(count_sessions) filter (where activity_date >= user_spine.as_of_date - {{ days }}), 0) as count_sessions_{{ days }}d,
        coalesce(sum(count_views) filter (where activity_date >= user_spine.as_of_date - {{ days }}), 0) as count_views_{{ days }}d,
        coalesce(sum(count_carts) filter (where activity_date >= user_spine.as_of_date - {{ days }}), 0) as count_carts_{{ days }}d,
        coalesce(sum(count_orders) filter (where activity_date >= user_spine.as_of_date - {{ days }}), 0) as count_purchases_{{ days }}d,
        coalesce(sum(sum_revenue) filter (where activity_date >= user_spine.as_of_date - {{ days }}), 0) as sum_revenue_{{ days }}d,
        {%- endfor %}
        count(activity_date) filter (where activity_date >= user_spine.as_of_date - 30) as count_active_days_30d,
        count(activity_date) as count_active_days_90d,
        coalesce(sum(count_cart_sessions), 0) as count_cart_sessions_90d,
        coalesce(sum(count_abandoned_cart_sessions), 0) as count_abandoned_cart_sessions_90d,
        coalesce(sum(count_removes), 0) as count_removes_90d,
        -- Searches and saved products: measured by `ml backtest --feature-groups` before they joined (docs/models.md).
        coalesce(sum(count_searches) filter (where activity_date >= user_spine.as_of_date - 30), 0)
            as count_searches_30d,
        coalesce(sum(count_favourites) filter (where activity_date >= user_spine.as_of_date - 30), 0)
            as count_favourites_30d,
        coalesce(sum(count_favourites), 0) as count_favourites_90d
    from user_spine
    left join user_days
        on user_spine.user_id = user_days.user_id
        and user_days.activity_date < user_spine.as_of_date
        and user_days.activity_date >= user_spine.as_of_date - 90
    group by 1, 2
),

-- Distinct categories by counting rows, not by merging lists: lists per user and as-of date held
-- 5 GB for 200k users x 30 as-of dates.
user_category_days as (
    select distinct user_id, activity_date, {{ explode_list('categories') }} as category
    from {{ ref('int_user_days_aggregated') }}
    {{ in_90_days_before_as_of_dates }}
),

categories_90d as (
    select
        user_spine.user_id,
        user_spine.as_of_date,
        count(distinct user_category_days.category) as count_distinct_categories_90d
    from user_spine
    inner join user_category_days
        on user_spine.user_id = user_category_days.user_id
        and user_category_days.activity_date < user_spine.as_of_date
        and user_category_days.activity_date >= user_spine.as_of_date - 90
    group by 1, 2
),

lifetime_activity as (
    -- The newest user-day strictly before the as-of date carries the running lifetime totals.
    select
        user_spine.user_id,
        user_spine.as_of_date,
        coalesce(lifetime.lifetime_sessions, 0) as count_sessions_lifetime,
        coalesce(lifetime.lifetime_views, 0) as count_views_lifetime,
        coalesce(lifetime.lifetime_carts, 0) as count_carts_lifetime,
        coalesce(lifetime.lifetime_orders, 0) as count_purchases_lifetime,
        coalesce(lifetime.lifetime_revenue, 0) as sum_revenue_lifetime,
        coalesce(lifetime.lifetime_coupon_orders, 0) as count_coupon_redemptions_lifetime,
        lifetime.activity_date as last_activity_date,
        lifetime.lifetime_purchase_days,
        lifetime.lifetime_sum_purchase_gap_days,
        lifetime.lifetime_sum_sq_purchase_gap_days,
        lifetime.first_purchase_date,
        lifetime.last_view_date,
        lifetime.last_cart_date,
        lifetime.last_purchase_date
    from user_spine
    left join {{ ref('int_user_lifetime_as_of') }} as lifetime
        on user_spine.user_id = lifetime.user_id
        and user_spine.as_of_date = lifetime.as_of_date
),

coupon_history as (
    select
        user_spine.user_id,
        user_spine.as_of_date,
        count(treatment_sends.send_date) as count_coupons_received_lifetime,
        count(treatment_sends.send_date) filter (where send_date >= user_spine.as_of_date - 90) as count_coupons_received_90d,
        max(treatment_sends.send_date) as last_coupon_date
    from user_spine
    left join treatment_sends
        on user_spine.user_id = treatment_sends.user_id
        and treatment_sends.send_date < user_spine.as_of_date
    group by 1, 2
),

features as (
    select
        user_spine.user_id,
        user_spine.as_of_date,
        user_spine.country,
        user_spine.device,
        user_spine.has_marketing_consent,
        cast({{ days_between('user_spine.signup_date', 'user_spine.as_of_date') }} as integer) as tenure_days,
        cast({{ days_between('lifetime_activity.last_activity_date', 'user_spine.as_of_date') }} as integer) as days_since_last_activity,
        cast({{ days_between('lifetime_activity.last_view_date', 'user_spine.as_of_date') }} as integer) as days_since_last_view,
        cast({{ days_between('lifetime_activity.last_cart_date', 'user_spine.as_of_date') }} as integer) as days_since_last_cart,
        cast({{ days_between('lifetime_activity.last_purchase_date', 'user_spine.as_of_date') }} as integer) as days_since_last_purchase,
        {%- for days in [7, 30, 90] %}
        cast(windowed_activity.count_sessions_{{ days }}d as integer) as count_sessions_{{ days }}d,
        cast(windowed_activity.count_views_{{ days }}d as integer) as count_views_{{ days }}d,
        cast(windowed_activity.count_carts_{{ days }}d as integer) as count_carts_{{ days }}d,
        cast(windowed_activity.count_purchases_{{ days }}d as integer) as count_purchases_{{ days }}d,
        cast(windowed_activity.sum_revenue_{{ days }}d as double) as sum_revenue_{{ days }}d,
        {%- endfor %}
        cast(windowed_activity.count_active_days_30d as integer) as count_active_days_30d,
        cast(windowed_activity.count_active_days_90d as integer) as count_active_days_90d,
        cast(coalesce(categories_90d.count_distinct_categories_90d, 0) as integer) as count_distinct_categories_90d,
        cast(
            windowed_activity.count_abandoned_cart_sessions_90d
            / nullif(windowed_activity.count_cart_sessions_90d, 0) as double
        ) as cart_abandonment_rate_90d,
        cast(
            windowed_activity.count_purchases_90d / nullif(windowed_activity.count_views_90d, 0) as double
        ) as view_to_purchase_rate_90d,
        cast(
            windowed_activity.count_carts_90d / nullif(windowed_activity.count_views_90d, 0) as double
        ) as view_to_cart_rate_90d,
        -- Shoppers who park items and take them out again are waiting for a discount: coupon responders.
        cast(
            windowed_activity.count_removes_90d / nullif(windowed_activity.count_carts_90d, 0) as double
        ) as remove_to_cart_rate_90d,
        cast(windowed_activity.count_searches_30d as integer) as count_searches_30d,
        cast(windowed_activity.count_favourites_30d as integer) as count_favourites_30d,
        cast(
            windowed_activity.count_favourites_90d / nullif(windowed_activity.count_views_90d, 0) as double
        ) as favourites_per_view_90d,
        cast(lifetime_activity.count_sessions_lifetime as integer) as count_sessions_lifetime,
        cast(
            lifetime_activity.count_carts_lifetime / nullif(lifetime_activity.count_views_lifetime, 0) as double
        ) as view_to_cart_rate_lifetime,
        cast(lifetime_activity.count_purchases_lifetime as integer) as count_purchases_lifetime,
        cast(lifetime_activity.sum_revenue_lifetime as double) as sum_revenue_lifetime,
        cast(
            cast(lifetime_activity.sum_revenue_lifetime as double) / nullif(lifetime_activity.count_purchases_lifetime, 0)
            as double
        ) as avg_order_value_lifetime,
        cast(coupon_history.count_coupons_received_90d as integer) as count_coupons_received_90d,
        cast(coupon_history.count_coupons_received_lifetime as integer) as count_coupons_received_lifetime,
        cast(lifetime_activity.count_coupon_redemptions_lifetime as integer) as count_coupon_redemptions_lifetime,
        cast({{ days_between('coupon_history.last_coupon_date', 'user_spine.as_of_date') }} as integer) as days_since_last_coupon,
        -- Sparse purchase histories: how often a customer buys, relative to their own rhythm and tenure.
        -- The repeat-purchase statistics (frequency, recency, age) are also the BG/NBD model's inputs.
        cast(coalesce(lifetime_activity.lifetime_purchase_days, 0) as integer) as count_purchase_days_lifetime,
        -- Null for a user who never bought (not yet a customer in the BG/NBD sense).
        cast(nullif(lifetime_activity.lifetime_purchase_days, 0) - 1 as integer) as count_repeat_purchase_days_lifetime,
        cast({{ days_between('lifetime_activity.first_purchase_date', 'user_spine.as_of_date') }} as integer) as days_since_first_purchase,
        cast({{ days_between('lifetime_activity.first_purchase_date', 'lifetime_activity.last_purchase_date') }} as integer)
            as days_between_first_and_last_purchase,
        cast(
            lifetime_activity.lifetime_sum_purchase_gap_days / nullif(lifetime_activity.lifetime_purchase_days - 1, 0)
            as double
        ) as mean_days_between_purchases,
        cast(sqrt(greatest(
            lifetime_activity.lifetime_sum_sq_purchase_gap_days / nullif(lifetime_activity.lifetime_purchase_days - 1, 0)
            - pow(lifetime_activity.lifetime_sum_purchase_gap_days
                  / nullif(lifetime_activity.lifetime_purchase_days - 1, 0), 2),
            0
        )) as double) as std_days_between_purchases,
        cast(
            {{ days_between('lifetime_activity.last_purchase_date', 'user_spine.as_of_date') }}
            / nullif(lifetime_activity.lifetime_sum_purchase_gap_days
                     / nullif(lifetime_activity.lifetime_purchase_days - 1, 0), 0)
            as double
        ) as purchase_gap_ratio,
        cast(
            cast(lifetime_activity.count_purchases_lifetime as double) * 30 / greatest({{ days_between('user_spine.signup_date', 'user_spine.as_of_date') }}, 1)
            as double
        ) as purchases_per_30d_tenure,
        cast(
            cast(lifetime_activity.sum_revenue_lifetime * 30 as double) / greatest({{ days_between('user_spine.signup_date', 'user_spine.as_of_date') }}, 1)
            as double
        ) as revenue_per_30d_tenure,
        -- Trend: the last week's daily session rate against the last quarter's (1 = steady, >1 = rising).
        cast(
            (cast(windowed_activity.count_sessions_7d as double) / 7)
            / nullif(cast(windowed_activity.count_sessions_90d as double) / 90, 0)
            as double
        ) as trend_sessions_7d_vs_90d,
        cast(
            (cast(windowed_activity.sum_revenue_30d as double) / 30)
            / nullif(cast(windowed_activity.sum_revenue_90d as double) / 90, 0)
            as double
        ) as trend_revenue_30d_vs_90d
    from user_spine
    inner join windowed_activity using (user_id, as_of_date)
    inner join lifetime_activity using (user_id, as_of_date)
    inner join coupon_history using (user_id, as_of_date)
    left join categories_90d using (user_id, as_of_date)
)

select * from features
