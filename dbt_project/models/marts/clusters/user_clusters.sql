-- Each scored user's behavioural cluster per as_of_date (ml/clusters/behaviour.py, written with the scores), with
-- the cluster's label. A view over the partitions `ml score` writes: nothing is copied into the warehouse.
{{ config(materialized='view') }}

with

clusters as (
    {{ source_or_empty('ml', 'clusters', {'user_id': 'bigint', 'as_of_date': 'date', 'cluster_id': 'bigint'}) }}
),

profiles as (
    {{ source_or_empty('ml', 'cluster_profiles', {'as_of_date': 'date', 'cluster_id': 'bigint', 'cluster_label': 'string'}) }}
)

select
    cast(clusters.as_of_date as date) as as_of_date,
    cast(clusters.user_id as bigint) as user_id,
    cast(clusters.cluster_id as bigint) as cluster_id,
    cast(profiles.cluster_label as string) as cluster_label
from clusters
left join profiles
    on cast(profiles.as_of_date as date) = cast(clusters.as_of_date as date)
    and profiles.cluster_id = clusters.cluster_id
