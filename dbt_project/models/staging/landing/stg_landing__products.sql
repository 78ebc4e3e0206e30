-- Empty when the shop sent no catalogue: categories then come from the events or stay unknown.
with

source as (
    {{ source_or_empty('landing', 'products', {
        'product_id': 'bigint',
        'category': 'string',
        'brand': 'string',
        'price': 'double',
    }) }}
),

renamed as (
    select
        cast(product_id as bigint) as product_id,
        cast(category as string) as category,
        cast(brand as string) as brand,
        cast(price as double) as list_price
    from source
)

select * from renamed
