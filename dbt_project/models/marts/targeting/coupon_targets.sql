{{
    config(
        materialized='incremental',
        partition_by=day_partitions('as_of_date'),
        unique_key='as_of_date',
        incremental_strategy=replace_days_strategy(),
        on_schema_change='append_new_columns',
        pre_hook="{% if is_incremental() %}{{ delete_days(this, 'as_of_date', in_as_of_range()) }}{% endif %}",
    )
}}
-- on_schema_change: a warehouse built before a column was added gets it (null on its older days) instead of a
-- failed run.
-- The pre-hook empties the dates being built first: delete+insert alone keeps a date's old rows when its
-- new send list is empty.
-- One row per targeted or held-out user per as_of_date: who gets which coupon today, under which policy
-- arm, and why. The choice is made in Python (ml/targeting/plan.py, ml/targeting/allocation.py: eligibility, arms,
-- holdout, budgeted allocation); here it is joined to the segments and catalogue for analysts, and the
-- house rules are tested (consent, contact cap, one coupon a day, budget, holdout share).
with

-- Only the dates being built: a rerun of one day never rewrites the coupons of another.
targets as (
    select * from {{ ref('stg_ml__targets') }}
    where {{ in_as_of_range() }}
),

segments as (
    select
        user_id,
        as_of_date,
        lifecycle_segment,
        propensity_decile,
        churn_risk_tier,
        p_purchase_30d,
        p_churn_30d,
        purchase_model_version
    from {{ ref('user_segments') }}
    where {{ in_as_of_range() }}
),

-- The category the coupon message features: the user's first recommendation that day.
featured as (
    select user_id, as_of_date, category as message_category
    from {{ ref('user_recommendations') }}
    where {{ in_as_of_range() }} and recommendation_rank = 1
),

catalogue as (
    select coupon_code, coupon_type, description as coupon_description
    from {{ ref('coupon_catalogue') }}
),

described as (
    select
        targets.as_of_date,
        targets.user_id,
        targets.policy,
        targets.is_holdout,
        targets.coupon_code,
        catalogue.coupon_type,
        catalogue.coupon_description,
        segments.lifecycle_segment,
        segments.propensity_decile,
        segments.churn_risk_tier,
        segments.p_purchase_30d,
        segments.p_churn_30d,
        targets.expected_order_value,
        targets.p_buy_with_coupon,
        targets.estimated_lift,
        targets.expected_cost,
        targets.expected_margin,
        targets.arm_budget,
        targets.priority_rank,
        targets.reason,
        segments.purchase_model_version,
        targets.uplift_model_version,
        featured.message_category
    from targets
    left join segments using (user_id, as_of_date)
    left join featured using (user_id, as_of_date)
    left join catalogue using (coupon_code)
)

select * from described
