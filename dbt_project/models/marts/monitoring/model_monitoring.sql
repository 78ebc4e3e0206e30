-- How each champion does after it ships, per scoring date: realised metrics on matured labels (pending
-- until the 30-day label window closes) and drift of its scores and inputs against its training window.
-- It reads its source directly: a staging view in between would be one more dbt task a day for nothing.
with

source as (
    {{ source_or_empty('ml', 'model_monitoring', {'scoring_date': 'date', 'model_name': 'string', 'model_version': 'string', 'metric': 'string', 'feature': 'string', 'value': 'double', 'reference_value': 'double', 'warn_threshold': 'double', 'alert_threshold': 'double', 'status': 'string', 'n_users': 'bigint', 'scored_by': 'string', 'monitored_on': 'date'}) }}
),

renamed as (
    select
        cast(scoring_date as date) as scoring_date,
        cast(model_name as string) as model_name,
        cast(model_version as string) as model_version,
        cast(metric as string) as metric,
        cast(feature as string) as feature,
        cast(value as double) as value,
        cast(reference_value as double) as reference_value,
        cast(warn_threshold as double) as warn_threshold,
        cast(alert_threshold as double) as alert_threshold,
        cast(status as string) as status,
        cast(n_users as bigint) as n_users,
        cast(scored_by as string) as scored_by,
        cast(monitored_on as date) as monitored_on
    from source
)

select
    *,
    status = 'alert' as is_alert
from renamed
