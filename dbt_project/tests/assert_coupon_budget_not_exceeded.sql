{{ config(tags=['targeting']) }}
-- The expected cost of sent (non-holdout) coupons never exceeds each policy arm's budget, nor the
-- daily budget in all (allowing half a cent per row: costs are rounded to cents).
with

sent as (
    select * from {{ ref('coupon_targets') }}
    where not is_holdout
),

per_arm as (
    select as_of_date, policy, sum(expected_cost) as spend, max(arm_budget) as budget, count(*) as n
    from sent
    group by 1, 2
    having sum(expected_cost) > max(arm_budget) + 0.005 * count(*)
),

per_day as (
    select as_of_date, 'all' as policy, sum(expected_cost) as spend, {{ var('daily_coupon_budget') }} as budget, count(*) as n
    from sent
    group by 1
    having sum(expected_cost) > {{ var('daily_coupon_budget') }} + 0.005 * count(*)
)

select * from per_arm
union all
select * from per_day
