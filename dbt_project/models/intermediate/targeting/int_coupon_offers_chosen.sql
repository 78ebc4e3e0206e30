-- THE TARGETING POLICY, in one replaceable place: which coupon each scored user would get and why,
-- with its expected cost and value. Eligibility (consent, contact cap), holdout and budget are
-- applied downstream in coupon_targets, so a new policy only has to replace this model.
--
-- This first policy ranks by propensity and segment:
--   lapsed (at_risk / hibernating / lost) in propensity deciles 4..10 -> winback (SAVE15); churn is
--   not scored for them (its model only knows recently active users), so propensity to come back decides
--   new                                                   -> welcome (WELCOME10)
--   loyal                                                 -> loyalty (FREESHIP)
--   active with propensity decile 4..8 (undecided)        -> nudge (EUR5OFF)
with

segments as (
    select * from {{ ref('user_segments') }}
    where is_scored
),

catalogue as (
    select * from {{ ref('coupon_catalogue') }}
),

-- Fallback order value for users without orders: that day's median, so a day's offers never depend on
-- another day, and a median rather than a float mean, whose bits vary with DuckDB's thread scheduling.
average_order as (
    select as_of_date, coalesce(median(avg_order_value_lifetime), 50.0) as fallback_order_value
    from segments
    group by as_of_date
),

offer_types as (
    select
        *,
        case
            -- Winning back needs someone who once came: a signup who never showed up is not lapsed.
            when lifecycle_segment in ('at_risk', 'hibernating', 'lost') and propensity_decile >= 4
                and days_since_last_activity is not null
                then 'winback'
            when lifecycle_segment = 'new' then 'welcome'
            when lifecycle_segment = 'loyal' then 'loyalty'
            when lifecycle_segment = 'active' and propensity_decile between 4 and 8 then 'nudge'
        end as coupon_type,
    from segments
),

priced as (
    select
        offer_types.as_of_date,
        offer_types.user_id,
        offer_types.lifecycle_segment,
        offer_types.propensity_decile,
        offer_types.churn_risk_tier,
        offer_types.p_purchase_30d,
        offer_types.p_churn_30d,
        offer_types.purchase_model_version,
        catalogue.coupon_code,
        catalogue.coupon_type,
        catalogue.description as coupon_description,
        cast(greatest(coalesce(offer_types.avg_order_value_lifetime, average_order.fallback_order_value),
                      catalogue.min_order_value) as decimal(12, 2)) as expected_order_value,
        catalogue.discount_type,
        catalogue.discount_value,
        catalogue.redemption_rate,
        catalogue.assumed_uplift,
    from offer_types
    inner join catalogue on offer_types.coupon_type = catalogue.coupon_type
    inner join average_order on offer_types.as_of_date = average_order.as_of_date
),

valued as (
    select
        *,
        -- Money is DECIMAL so the budget's running sum is exact and reruns give identical rows.
        cast(redemption_rate * case
            when discount_type = 'percent' then expected_order_value * discount_value / 100
            else discount_value
        end as decimal(12, 2)) as expected_cost,
        -- A lapsed user has no churn score: they count as churned (weight 2, as p_churn_30d = 1 would give).
        cast(assumed_uplift * expected_order_value * (1 + coalesce(p_churn_30d, 1.0)) as decimal(12, 2))
            as expected_value,
        coupon_type || ' coupon: ' || lifecycle_segment || ' shopper, purchase propensity decile '
            || propensity_decile || ', churn risk ' || coalesce(churn_risk_tier, 'not scored (lapsed)') as reason,
    from priced
)

select * from valued
