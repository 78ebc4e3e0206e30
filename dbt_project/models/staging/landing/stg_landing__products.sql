-- Empty when the shop sent no catalogue: categories then come from the events or stay unknown.
with

{% if has_landed('products') %}
source as (
    select * from {{ source('landing', 'products') }}
),
{% else %}
source as (
    select
        cast(null as bigint) as product_id,
        cast(null as varchar) as category,
        cast(null as varchar) as brand,
        cast(null as double) as price,
    where false
),
{% endif %}

renamed as (
    select
        cast(product_id as bigint) as product_id,
        cast(category as varchar) as category,
        cast(brand as varchar) as brand,
        cast(price as double) as list_price,
    from source
)

select * from renamed
