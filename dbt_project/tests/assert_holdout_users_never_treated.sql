{{ config(tags=['targeting']) }}
-- A user held out is never sent a coupon by the pipeline in the same holdout period (holdout_days long,
-- periods counted from Monday 2000-01-03 as in ml/targeting/plan.py).
with

periods as (
    select
        user_id,
        is_holdout,
        cast(floor({{ days_between("date '2000-01-03'", 'as_of_date') }} / {{ var('holdout_days') }}) as bigint) as holdout_period
    from {{ ref('coupon_targets') }}
)

select user_id, holdout_period
from periods
group by 1, 2
having bool_or(is_holdout) and bool_or(not is_holdout)
