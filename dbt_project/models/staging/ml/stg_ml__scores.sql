with

source as (
    select * from {{ source('ml', 'scores') }}
),

renamed as (
    select
        cast(user_id as bigint) as user_id,
        cast(as_of_date as date) as as_of_date,
        cast(p_purchase_30d as double) as p_purchase_30d,
        cast(p_churn_30d as double) as p_churn_30d,
        cast(purchase_model_version as string) as purchase_model_version,
        cast(churn_model_version as string) as churn_model_version
    from source
)

select * from renamed
