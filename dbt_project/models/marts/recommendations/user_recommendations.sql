{{
    config(
        materialized='incremental',
        partition_by=day_partitions('as_of_date'),
        unique_key='as_of_date',
        incremental_strategy=replace_days_strategy(),
        on_schema_change='fail',
    )
}}
-- The 3 product categories to feature for each segmented user per as_of_date (macros/category_recommendations.sql):
-- their own recent views, carts and purchases, smoothed toward what the shop sells most. Built for the
-- dates user_segments has, so a rerun of one day never rewrites another.
with

segmented_users as (
    select user_id, as_of_date
    from {{ ref('user_segments') }}
    where {{ in_as_of_range() }}
),

recommended as (
    {{ category_recommendations('segmented_users') }}
)

select
    as_of_date,
    user_id,
    cast(recommendation_rank as integer) as recommendation_rank,
    category,
    cast(affinity as double) as affinity,
    basis
from recommended
