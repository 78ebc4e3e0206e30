{{ config(tags=['targeting']) }}
-- Nobody is targeted (or drawn into a holdout) if a campaign coupon, an earlier sent target or an earlier
-- holdout draw reached them in the cap window. The same rule as ml/targeting/plan.py load_eligible.
with

targets as (
    select * from {{ ref('coupon_targets') }}
),

contacts as (
    select user_id, send_date as contact_date
    from {{ ref('stg_landing__coupon_sends') }}
    where is_treatment
    union all
    select user_id, as_of_date
    from targets
)

select targets.user_id, targets.as_of_date, contacts.contact_date
from targets
inner join contacts
    on targets.user_id = contacts.user_id
    and contacts.contact_date < targets.as_of_date
    and contacts.contact_date >= targets.as_of_date - {{ var('contact_cap_days') }}
