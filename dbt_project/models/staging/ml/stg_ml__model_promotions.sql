with

source as (
    select * from {{ source('ml', 'model_promotions') }}
),

renamed as (
    select
        cast(event_id as varchar) as promotion_event_id,
        cast(changed_at as timestamp) as changed_at,
        cast(model_name as varchar) as model_name,
        cast(action as varchar) as action,
        cast(from_version as varchar) as from_version,
        cast(to_version as varchar) as to_version,
        cast(changed_by as varchar) as changed_by,
        cast(reason as varchar) as reason,
        cast(metrics_json as varchar) as metrics_json,
    from source
)

select * from renamed
