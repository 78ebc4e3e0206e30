-- How each champion does after it ships, per scoring date: realised metrics on matured labels (pending
-- until the 30-day label window closes) and drift of its scores and inputs against its training window.
select
    *,
    status = 'alert' as is_alert,
from {{ ref('stg_ml__model_monitoring') }}
