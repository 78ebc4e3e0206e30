-- Typed view over the landed events; validation happens downstream in int_events_checked.
with

source as (
    select * from {{ source('landing', 'events') }}
),

renamed as (
    select
        cast(event_id as string) as event_id,
        cast(event_date as date) as event_date,
        cast(event_at as timestamp) as event_at,
        lower(trim(cast(event_type as string))) as event_type,
        cast(user_id as bigint) as user_id,
        cast(product_id as bigint) as product_id,
        cast(category as string) as category,
        cast(price as double) as unit_price,
        cast(quantity as bigint) as quantity,
        cast(session_id as string) as session_id,
        cast(order_id as string) as order_id,
        cast(coupon_code as string) as coupon_code,
        cast(parse_errors as string) as parse_errors,
        cast(source_file as string) as source_file
    from source
)

select * from renamed
