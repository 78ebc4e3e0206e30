{{
    config(
        materialized='incremental',
        partition_by=day_partitions('activity_date'),
        incremental_strategy='append',
        pre_hook="{{ delete_reprocessed('activity_date') }}",
    )
}}
-- One row per user, day and product category with clean events: the implicit feedback the category
-- recommendations read (views, carts, purchased lines). Days by the event's own timestamp, as for sessions.
-- Incremental by day (macros/reprocess_window.sql).
with

events as (
    select user_id, cast(event_at as date) as activity_date, category, event_type
    from {{ ref('int_events_checked') }}
    where quarantine_reason is null and category is not null and {{ in_reprocess_window('event_date') }}
)

select
    user_id,
    activity_date,
    category,
    count(*) filter (where event_type = 'view') as count_views,
    count(*) filter (where event_type = 'cart') as count_carts,
    count(*) filter (where event_type = 'purchase') as count_purchases
from events
group by 1, 2, 3
