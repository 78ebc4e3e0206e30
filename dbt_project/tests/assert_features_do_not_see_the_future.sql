{{ config(tags=['features']) }}
-- Point in time (docs: point_in_time): no feature for as_of_date T may reflect an event at or after T.
-- For the oldest as-of date built in this run (a history build has later events landed by then), view,
-- cart, order and purchase-day counts and purchase recency are recomputed straight from the clean events
-- with event_at < T and must match the features exactly. The full rebuild comparison, which covers every
-- column, is `python -m ml check-leakage`.
-- The recount reads each user's every clean event, so its cost would grow with the history: a shop of up to
-- 4M clean and quarantined events is recounted whole, a bigger one as one hash bucket of users holding 2M-4M
-- events (a year of 200k users: 30 buckets of about 6.5k users), a different bucket each date. A leak in a
-- join touches every user, so a bucket catches it on every run.
with

built as (
    select min(as_of_date) as as_of_date from {{ ref('int_as_of_dates') }}
),

bucket_count as (
    select greatest(1, count(*) // 2000000) as buckets from {{ ref('int_events_checked') }}
),

sample as (
    select built.as_of_date, bucket_count.buckets, hash(built.as_of_date) % bucket_count.buckets as bucket,
    from built
    cross join bucket_count
),

oldest as (
    select user_features.*
    from {{ ref('user_features') }}
    inner join sample using (as_of_date)
    where hash(user_features.user_id) % sample.buckets = sample.bucket
),

clean_events as (
    select * from {{ ref('int_events_checked') }}
    where quarantine_reason is null
      and user_id in (select user_id from oldest)
),

recounted as (
    select
        oldest.user_id,
        oldest.as_of_date,
        any_value(oldest.count_views_90d) as count_views_90d,
        any_value(oldest.count_carts_90d) as count_carts_90d,
        any_value(oldest.count_purchases_lifetime) as count_purchases_lifetime,
        any_value(oldest.count_purchase_days_lifetime) as count_purchase_days_lifetime,
        any_value(oldest.days_since_last_purchase) as days_since_last_purchase,
        any_value(oldest.days_since_last_activity) as days_since_last_activity,
        count(*) filter (where event_type = 'view' and event_at >= oldest.as_of_date - 90) as views_90d,
        count(*) filter (where event_type = 'cart' and event_at >= oldest.as_of_date - 90) as carts_90d,
        count(distinct coalesce(order_id, event_id)) filter (where event_type = 'purchase') as orders_lifetime,
        count(distinct cast(event_at as date)) filter (where event_type = 'purchase') as purchase_days_lifetime,
        oldest.as_of_date - max(cast(event_at as date)) filter (where event_type = 'purchase') as purchase_recency,
        oldest.as_of_date - max(cast(event_at as date)) as activity_recency,
    from oldest
    left join clean_events
        on oldest.user_id = clean_events.user_id
        and clean_events.event_at < oldest.as_of_date
    group by 1, 2
)

select user_id, as_of_date, 'features differ from events strictly before the as-of date' as problem
from recounted
where views_90d <> count_views_90d
   or carts_90d <> count_carts_90d
   or orders_lifetime <> count_purchases_lifetime
   or purchase_days_lifetime <> count_purchase_days_lifetime
   or purchase_recency is distinct from days_since_last_purchase
   or activity_recency is distinct from days_since_last_activity
