-- The expected cost of sent (non-holdout) coupons never exceeds the daily budget.
select as_of_date, sum(expected_cost) as spend
from {{ ref('coupon_targets') }}
where not is_holdout
group by 1
having sum(expected_cost) > {{ var('daily_coupon_budget') }}
