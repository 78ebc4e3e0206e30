-- One row per behavioural cluster per as_of_date (ml/clusters/behaviour.py): its size, label, the mean of each
-- clustering feature in the feature's own units, and how it sits beside the lifecycle rules (the lifecycle
-- segment most of its users are in that day). A view over the profile partitions and the day's segments.
{{ config(materialized='view') }}

with

profiles as (
    {{ source_or_empty('ml', 'cluster_profiles', {'as_of_date': 'date', 'cluster_id': 'bigint', 'cluster_label': 'string', 'n_users': 'bigint', 'share_of_users': 'double', 'silhouette': 'double', 'mean_days_since_last_activity': 'double', 'mean_count_sessions_90d': 'double', 'mean_count_active_days_90d': 'double', 'mean_count_purchases_90d': 'double', 'mean_sum_revenue_90d': 'double', 'mean_avg_order_value_lifetime': 'double', 'mean_cart_abandonment_rate_90d': 'double', 'mean_remove_to_cart_rate_90d': 'double', 'mean_count_distinct_categories_90d': 'double', 'mean_tenure_days': 'double'}) }}
),

lifecycle_counts as (
    select
        user_clusters.as_of_date,
        user_clusters.cluster_id,
        user_segments.lifecycle_segment,
        cast(count(*) as double) / sum(count(*)) over (partition by user_clusters.as_of_date, user_clusters.cluster_id) as share
    from {{ ref('user_clusters') }} as user_clusters
    inner join {{ ref('user_segments') }} as user_segments using (user_id, as_of_date)
    group by 1, 2, 3
),

lifecycle_mix as (
    select *
    from lifecycle_counts
    qualify row_number() over (partition by as_of_date, cluster_id order by share desc, lifecycle_segment) = 1
)

select
    cast(profiles.as_of_date as date) as as_of_date,
    cast(profiles.cluster_id as bigint) as cluster_id,
    cast(profiles.cluster_label as string) as cluster_label,
    cast(profiles.n_users as bigint) as n_users,
    cast(profiles.share_of_users as double) as share_of_users,
    cast(profiles.silhouette as double) as silhouette,
    cast(profiles.mean_days_since_last_activity as double) as mean_days_since_last_activity,
    cast(profiles.mean_count_sessions_90d as double) as mean_count_sessions_90d,
    cast(profiles.mean_count_active_days_90d as double) as mean_count_active_days_90d,
    cast(profiles.mean_count_purchases_90d as double) as mean_count_purchases_90d,
    cast(profiles.mean_sum_revenue_90d as double) as mean_sum_revenue_90d,
    cast(profiles.mean_avg_order_value_lifetime as double) as mean_avg_order_value_lifetime,
    cast(profiles.mean_cart_abandonment_rate_90d as double) as mean_cart_abandonment_rate_90d,
    cast(profiles.mean_remove_to_cart_rate_90d as double) as mean_remove_to_cart_rate_90d,
    cast(profiles.mean_count_distinct_categories_90d as double) as mean_count_distinct_categories_90d,
    cast(profiles.mean_tenure_days as double) as mean_tenure_days,
    cast(lifecycle_mix.lifecycle_segment as string) as main_lifecycle_segment,
    cast(lifecycle_mix.share as double) as main_lifecycle_share
from profiles
left join lifecycle_mix
    on lifecycle_mix.as_of_date = cast(profiles.as_of_date as date)
    and lifecycle_mix.cluster_id = profiles.cluster_id
