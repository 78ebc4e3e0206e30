with

source as (
    select * from {{ source('landing', 'products') }}
),

renamed as (
    select
        cast(product_id as bigint) as product_id,
        cast(category as varchar) as category,
        cast(brand as varchar) as brand,
        cast(price as double) as list_price,
    from source
)

select * from renamed
