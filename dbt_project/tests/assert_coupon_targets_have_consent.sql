{{ config(tags=['targeting']) }}
-- Nobody without marketing consent is ever targeted (holdout rows included).
select targets.user_id, targets.as_of_date
from {{ ref('coupon_targets') }} as targets
inner join {{ ref('user_features') }} as features using (user_id, as_of_date)
where not features.has_marketing_consent
