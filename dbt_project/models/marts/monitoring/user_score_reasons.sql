-- The top 3 reasons behind every scored user's probability, per model and as-of date. A view over the
-- reason partitions `ml score` writes (about 6 rows per user per day): nothing is copied into the warehouse.
{{ config(materialized='view') }}

select * from {{ ref('stg_ml__score_reasons') }}
