with

source as (
    select * from {{ source('ml', 'model_promotions') }}
),

renamed as (
    select
        cast(event_id as string) as promotion_event_id,
        cast(changed_at as timestamp) as changed_at,
        cast(model_name as string) as model_name,
        cast(action as string) as action,
        cast(from_version as string) as from_version,
        cast(to_version as string) as to_version,
        cast(changed_by as string) as changed_by,
        cast(reason as string) as reason,
        cast(metrics_json as string) as metrics_json
    from source
)

select * from renamed
