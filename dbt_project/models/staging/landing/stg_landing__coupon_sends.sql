-- Empty when the shop never ran a randomised campaign: coupon features are then zero.
with

{% if has_landed('coupon_sends') %}
source as (
    select * from {{ source('landing', 'coupon_sends') }}
),
{% else %}
source as (
    select
        cast(null as varchar) as campaign_id,
        cast(null as bigint) as user_id,
        cast(null as timestamp) as sent_at,
        cast(null as date) as send_date,
        cast(null as varchar) as group_name,
        cast(null as varchar) as coupon_code,
    where false
),
{% endif %}

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
