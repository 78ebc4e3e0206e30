{{
    config(
        materialized='incremental',
        partition_by=day_partitions('activity_date'),
        incremental_strategy='append',
        pre_hook="{{ delete_reprocessed('activity_date') }}",
    )
}}
-- One row per session per day it has clean events in. Events belong to the day of their own timestamp:
-- a session running past midnight is split at midnight, so a feature as of a date never sees an event
-- on or after it. Events without a session id (e.g. a purchase-only log) form a session of their own.
with

events as (
    select * from {{ ref('int_events_checked') }}
    -- A clean event's day is its partition day (other rows are quarantined): incremental by day.
    where quarantine_reason is null and {{ in_reprocess_window('event_date') }}
),

keyed as (
    select
        *,
        cast(event_at as date) as activity_date,
        coalesce(session_id, 'order:' || order_id, 'event:' || event_id) as session_key
    from events
),

sessions as (
    select
        user_id,
        session_key,
        activity_date,
        min(event_at) as started_at,
        count(*) filter (where event_type = 'view') as count_views,
        count(*) filter (where event_type = 'cart') as count_carts,
        count(*) filter (where event_type = 'remove_from_cart') as count_removes,
        count(*) filter (where event_type = 'search') as count_searches,
        count(*) filter (where event_type = 'favourite') as count_favourites,
        count(distinct coalesce(order_id, event_id)) filter (where event_type = 'purchase') as count_orders,
        -- Money as exact decimals: float sums depend on summation order, and a rerun must give identical rows.
        coalesce(sum(cast(unit_price * quantity as decimal(18, 2))) filter (where event_type = 'purchase'), 0)
            as sum_revenue,
        count(distinct coalesce(order_id, event_id)) filter (
            where event_type = 'purchase' and coupon_code is not null
        ) as count_coupon_orders,
        -- Sorted: a list's order would otherwise depend on how the rows were scanned, and a rerun must match.
        -- Null without a category (Spark's array_agg would give an empty list where DuckDB's gives null).
        case when count(category) > 0
            then array_sort(array_distinct(array_agg(category) filter (where category is not null)))
        end as categories
    from keyed
    group by 1, 2, 3
),

flagged as (
    select
        *,
        count_carts > 0 as has_cart,
        count_orders > 0 as has_purchase
    from sessions
)

select * from flagged
