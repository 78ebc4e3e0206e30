-- The top 3 reasons behind every scored user's probability, per model and as-of date. A view over the
-- reason partitions `ml score` writes (about 6 rows per user per day): nothing is copied into the warehouse.
-- It reads its source directly: a staging view in between would be one more dbt task a day for nothing.
{{ config(materialized='view') }}

with

source as (
    {{ source_or_empty('ml', 'score_reasons', {'user_id': 'bigint', 'as_of_date': 'date', 'model_name': 'string', 'model_version': 'string', 'reason_rank': 'integer', 'feature': 'string', 'feature_value': 'string', 'contribution': 'double', 'direction': 'string', 'reason': 'string', 'base_value': 'double', 'margin': 'double'}) }}
),

renamed as (
    select
        cast(user_id as bigint) as user_id,
        cast(as_of_date as date) as as_of_date,
        cast(model_name as string) as model_name,
        cast(model_version as string) as model_version,
        cast(reason_rank as integer) as reason_rank,
        cast(feature as string) as feature,
        cast(feature_value as string) as feature_value,
        cast(contribution as double) as contribution,
        cast(direction as string) as direction,
        cast(reason as string) as reason,
        cast(base_value as double) as base_value,
        cast(margin as double) as margin
    from source
)

select * from renamed
