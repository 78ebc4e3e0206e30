{{
    config(
        materialized='incremental',
        unique_key='as_of_date',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
    )
}}
-- One row per targeted user per as_of_date: who gets which coupon today. The offer comes from the
-- policy (int_coupon_offers_chosen); here the house rules apply: marketing consent, a contact cap,
-- one coupon per user per day, a daily budget, and a deterministic random holdout kept as control.
with

-- Only the dates being built: a rerun of one day never rewrites the coupons of another.
offers as (
    select * from {{ ref('int_coupon_offers_chosen') }}
    where coupon_code is not null
      and {{ in_as_of_range() }}
),

consent as (
    select user_id, as_of_date, has_marketing_consent from {{ ref('user_segments') }}
),

contacts as (
    select user_id, send_date as contact_date
    from {{ ref('stg_landing__coupon_sends') }}
    where is_treatment
    {% if is_incremental() %}
    union all
    select user_id, as_of_date as contact_date
    from {{ this }}
    where not is_holdout
    {% endif %}
),

last_contact as (
    select
        offers.user_id,
        offers.as_of_date,
        max(contacts.contact_date) as last_contact_date,
    from offers
    inner join contacts
        on offers.user_id = contacts.user_id
        and contacts.contact_date < offers.as_of_date
        and contacts.contact_date >= offers.as_of_date - {{ var('contact_cap_days') }}
    group by 1, 2
),

eligible as (
    select
        offers.*,
        -- Holdout from a hash of (user, date): the same rerun picks the same users.
        cast(('0x' || left(md5(offers.user_id || '|' || offers.as_of_date), 8)) as bigint) % 10000
            < {{ var('holdout_share') }} * 10000 as is_holdout,
    from offers
    inner join consent using (user_id, as_of_date)
    left join last_contact using (user_id, as_of_date)
    where consent.has_marketing_consent
      and last_contact.last_contact_date is null
),

ranked as (
    select
        *,
        row_number() over (
            partition by as_of_date order by expected_value - expected_cost desc, user_id
        ) as priority_rank,
    from eligible
),

spend as (
    select
        *,
        sum(case when is_holdout then 0 else expected_cost end) over (
            partition by as_of_date order by priority_rank rows unbounded preceding
        ) as cumulative_cost,
    from ranked
),

within_budget as (
    select
        *,
        max(case when not is_holdout and cumulative_cost <= {{ var('daily_coupon_budget') }} then priority_rank end)
            over (partition by as_of_date) as last_funded_rank,
    from spend
),

targets as (
    select
        as_of_date,
        user_id,
        coupon_code,
        coupon_type,
        coupon_description,
        lifecycle_segment,
        propensity_decile,
        churn_risk_tier,
        p_purchase_30d,
        p_churn_30d,
        expected_order_value,
        expected_cost,
        expected_value,
        priority_rank,
        is_holdout,
        case when is_holdout then 'holdout (control, not sent): ' || reason else reason end as reason,
        purchase_model_version,
    from within_budget
    where priority_rank <= last_funded_rank
      and (is_holdout or cumulative_cost <= {{ var('daily_coupon_budget') }})
)

select * from targets
