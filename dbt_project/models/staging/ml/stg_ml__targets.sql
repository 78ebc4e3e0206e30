with

source as (
    select * from {{ source('ml', 'targets') }}
),

renamed as (
    select
        cast(as_of_date as date) as as_of_date,
        cast(user_id as bigint) as user_id,
        cast(policy as string) as policy,
        cast(is_holdout as boolean) as is_holdout,
        cast(coupon_code as string) as coupon_code,
        cast(expected_order_value as decimal(12, 2)) as expected_order_value,
        cast(p_buy_with_coupon as double) as p_buy_with_coupon,
        cast(estimated_lift as double) as estimated_lift,
        cast(expected_cost as decimal(12, 2)) as expected_cost,
        cast(expected_margin as decimal(12, 2)) as expected_margin,
        cast(priority_rank as bigint) as priority_rank,
        cast(reason as string) as reason,
        cast(uplift_model_version as string) as uplift_model_version,
        cast(arm_budget as decimal(12, 2)) as arm_budget
    from source
)

select * from renamed
