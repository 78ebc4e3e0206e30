{{
    config(
        materialized='incremental',
        partition_by=day_partitions('as_of_date'),
        unique_key='as_of_date',
        incremental_strategy=replace_days_strategy(),
        on_schema_change='fail',
    )
}}
-- One row per user per as_of_date: lifecycle segment (rules in user_segments.yml), purchase-propensity
-- decile and churn-risk tier from that day's scores. Every known user is scored unless a lookback is configured.
with

features as (
    select
        user_id,
        as_of_date,
        has_marketing_consent,
        tenure_days,
        days_since_last_activity,
        days_since_last_purchase,
        count_purchases_90d,
        avg_order_value_lifetime
    from {{ ref('user_features') }}
    where {{ in_as_of_range() }}
),

scores as (
    select * from {{ ref('stg_ml__scores') }}
),

joined as (
    select
        features.*,
        scores.p_purchase_30d,
        scores.p_churn_30d,
        scores.purchase_model_version,
        scores.churn_model_version,
        scores.user_id is not null as is_scored
    from features
    inner join (select distinct as_of_date from scores) as scored_dates using (as_of_date)
    left join scores using (user_id, as_of_date)
),

segmented as (
    select
        as_of_date,
        user_id,
        {{ lifecycle_segment() }} as lifecycle_segment,
        case when is_scored then cast(ntile(10) over (
            partition by as_of_date, is_scored order by p_purchase_30d, user_id
        ) as bigint) end as propensity_decile,
        case
            when p_churn_30d is null then null
            when p_churn_30d >= 0.6 then 'high'
            when p_churn_30d >= 0.3 then 'medium'
            else 'low'
        end as churn_risk_tier,
        p_purchase_30d,
        p_churn_30d,
        purchase_model_version,
        churn_model_version,
        is_scored,
        has_marketing_consent,
        tenure_days,
        days_since_last_activity,
        days_since_last_purchase,
        count_purchases_90d,
        avg_order_value_lifetime
    from joined
)

select * from segmented
