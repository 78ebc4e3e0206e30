with

source as (
    select * from {{ source('landing', 'coupon_sends') }}
),

renamed as (
    select
        cast(campaign_id as varchar) as campaign_id,
        cast(user_id as bigint) as user_id,
        cast(sent_at as timestamp) as sent_at,
        cast(send_date as date) as send_date,
        cast(group_name as varchar) as group_name,
        cast(coupon_code as varchar) as coupon_code,
        group_name = 'treatment' as is_treatment,
    from source
)

select * from renamed
