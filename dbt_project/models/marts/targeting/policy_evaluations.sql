-- One row per targeting day (evaluation_date), targeting policy and evidence source: what the policy is
-- worth per day at the planned coupon budget, and its difference to the policy that led that day, with
-- 95% intervals. Sources: campaign (off-policy, on the shop's randomised campaigns), holdout (the
-- pipeline's own arms against their holdouts) and pooled (both, by inverse variance: what the gate decides on).
with

evaluations as (
    select * from {{ ref('stg_ml__policy_evaluations') }}
),

flagged as (
    select
        *,
        policy = leader_policy as is_leader,
        value_ci_low > 0 as earns_above_zero
    from evaluations
)

select * from flagged
