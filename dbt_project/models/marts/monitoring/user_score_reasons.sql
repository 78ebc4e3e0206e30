-- The top 3 reasons behind every scored user's probability, per model and as-of date. A view over the
-- reason partitions `ml score` writes (about 6 rows per user per day): nothing is copied into the warehouse.
-- It reads its source directly: a staging view in between would be one more dbt task a day for nothing.
{{ config(materialized='view') }}

with

source as (
    {{ source_or_empty('ml', 'score_reasons', {'user_id': 'bigint', 'as_of_date': 'date', 'model_name': 'varchar', 'model_version': 'varchar', 'reason_rank': 'integer', 'feature': 'varchar', 'feature_value': 'varchar', 'contribution': 'double', 'direction': 'varchar', 'reason': 'varchar', 'base_value': 'double', 'margin': 'double'}) }}
),

renamed as (
    select
        cast(user_id as bigint) as user_id,
        cast(as_of_date as date) as as_of_date,
        cast(model_name as varchar) as model_name,
        cast(model_version as varchar) as model_version,
        cast(reason_rank as integer) as reason_rank,
        cast(feature as varchar) as feature,
        cast(feature_value as varchar) as feature_value,
        cast(contribution as double) as contribution,
        cast(direction as varchar) as direction,
        cast(reason as varchar) as reason,
        cast(base_value as double) as base_value,
        cast(margin as double) as margin,
    from source
)

select * from renamed
