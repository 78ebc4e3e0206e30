-- Each lifecycle segment's expected daily orders and revenue for the 28 days after each as-of date, with 95%
-- intervals and the realised error of the same forecast made 28 days before the newest landed day, next to
-- the seasonal naive baseline's (ml/forecasts/segments.py). A view over the partitions the forecast step writes.
{{ config(materialized='view') }}

with

forecasts as (
    {{ source_or_empty('ml', 'segment_forecasts', {'as_of_date': 'date', 'lifecycle_segment': 'string', 'metric': 'string', 'forecast_date': 'date', 'forecast': 'double', 'lower_95': 'double', 'upper_95': 'double', 'history_days': 'bigint', 'ets_mase': 'double', 'seasonal_naive_mase': 'double'}) }}
)

select
    cast(as_of_date as date) as as_of_date,
    cast(lifecycle_segment as string) as lifecycle_segment,
    cast(metric as string) as metric,
    cast(forecast_date as date) as forecast_date,
    cast(forecast as double) as forecast,
    cast(lower_95 as double) as lower_95,
    cast(upper_95 as double) as upper_95,
    cast(history_days as bigint) as history_days,
    cast(ets_mase as double) as ets_mase,
    cast(seasonal_naive_mase as double) as seasonal_naive_mase
from forecasts
