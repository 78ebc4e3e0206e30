{{ config(tags=['targeting']) }}
-- The holdout share of each day's targets stays within 5 points of var('holdout_share')
-- (checked on days with at least 200 targets, where sampling noise is small enough to judge).
select as_of_date, count(*) as targets, avg(cast(is_holdout as integer)) as holdout_share
from {{ ref('coupon_targets') }}
group by 1
having count(*) >= 200
   and abs(avg(cast(is_holdout as integer)) - {{ var('holdout_share') }}) > 0.05
