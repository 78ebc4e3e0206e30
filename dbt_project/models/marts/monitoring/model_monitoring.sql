-- How each champion does after it ships, per scoring date: realised metrics on matured labels (pending
-- until the 30-day label window closes) and drift of its scores and inputs against its training window.
-- It reads its source directly: a staging view in between would be one more dbt task a day for nothing.
with

source as (
    {{ source_or_empty('ml', 'model_monitoring', {'scoring_date': 'date', 'model_name': 'varchar', 'model_version': 'varchar', 'metric': 'varchar', 'feature': 'varchar', 'value': 'double', 'reference_value': 'double', 'warn_threshold': 'double', 'alert_threshold': 'double', 'status': 'varchar', 'n_users': 'bigint', 'scored_by': 'varchar', 'monitored_on': 'date'}) }}
),

renamed as (
    select
        cast(scoring_date as date) as scoring_date,
        cast(model_name as varchar) as model_name,
        cast(model_version as varchar) as model_version,
        cast(metric as varchar) as metric,
        cast(feature as varchar) as feature,
        cast(value as double) as value,
        cast(reference_value as double) as reference_value,
        cast(warn_threshold as double) as warn_threshold,
        cast(alert_threshold as double) as alert_threshold,
        cast(status as varchar) as status,
        cast(n_users as bigint) as n_users,
        cast(scored_by as varchar) as scored_by,
        cast(monitored_on as date) as monitored_on,
    from source
)

select
    *,
    status = 'alert' as is_alert,
from renamed
