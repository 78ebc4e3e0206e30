{{ config(tags=['features']) }}
-- Point in time (docs: point_in_time): no feature for as_of_date T may reflect an event at or after T.
-- For the oldest as-of date built in this run (a history build has later events landed by then), 30-day view,
-- cart and order counts, lifetime order and purchase-day counts and purchase and activity recency are
-- recomputed from the clean events with event_at < T and must match the features exactly. The full rebuild
-- comparison, which covers every column, is `python -m ml check-leakage`.
-- Cost by days, not history: the lifetime figures continue the newest lifetime checkpoint before T
-- (int_user_lifetime_as_of: each user's totals from the user-days before its date, valid while no earlier day
-- is rebuilt) with the clean events since it, so the test reads the 30 days before T (a run re-processes a few).
-- Without a checkpoint (a first build, a full refresh, a date before every checkpoint) it recounts every event.
-- The checkpoint itself is what the features continue too, so a fault in carrying totals across it is caught by
-- the full recount of a first build and by `python -m ml check-leakage`, not here. Orders are counted per key and
-- day, as the user-days count them (an id re-used more than duplicate_window_days later is a new order).
-- Users are sampled by hash bucket, sized so a bucket holds 2M-4M of the events read (a different bucket each
-- date); a leak in a join touches every user, so a bucket catches it on every run.
{%- set window_days = 30 %}{#- the window of the features compared: count_*_30d #}
with

built as (
    select min(as_of_date) as as_of_date from {{ ref('int_as_of_dates') }}
),

-- The newest checkpoint before T (1900-01-01 without one: every event is read).
newest_checkpoint as (
    select
        built.as_of_date,
        coalesce(
            (select max(as_of_date) from {{ ref('int_user_lifetime_as_of') }} where as_of_date < built.as_of_date),
            date '1900-01-01'
        ) as checkpoint_date
    from built
),

checkpoint as (
    select *, least(as_of_date - {{ window_days }}, checkpoint_date) as read_from
    from newest_checkpoint
),

sample as (
    select
        checkpoint.*,
        greatest(1, cast(floor((
            select count(*) from {{ ref('int_events_checked') }}
            where event_date >= checkpoint.read_from and event_date < checkpoint.as_of_date
        ) / 2000000) as bigint)) as buckets
    from checkpoint
),

oldest as (
    select user_features.*, sample.checkpoint_date
    from {{ ref('user_features') }}
    inner join sample using (as_of_date)
    where hash(user_features.user_id) % sample.buckets = hash(sample.as_of_date) % sample.buckets
),

-- The sampled users' clean events the recount reads. Clean events lie on their partition day, so the
-- event_date bounds skip the older row groups.
clean_events as (
    select events.user_id, events.event_type, events.event_at, events.order_id, events.event_id
    from {{ ref('int_events_checked') }} as events
    inner join checkpoint
        on events.event_date >= checkpoint.read_from
        and events.event_date < checkpoint.as_of_date
    where events.quarantine_reason is null
      and events.user_id in (select user_id from oldest)
),

-- Each sampled user's totals at the checkpoint (no row: no activity before it).
at_checkpoint as (
    select oldest.user_id, lifetime.lifetime_orders, lifetime.lifetime_purchase_days,
           lifetime.last_purchase_date, lifetime.activity_date
    from oldest
    inner join {{ ref('int_user_lifetime_as_of') }} as lifetime
        on oldest.user_id = lifetime.user_id
        and oldest.checkpoint_date = lifetime.as_of_date
),

recounted as (
    select
        oldest.user_id,
        oldest.as_of_date,
        any_value(oldest.count_views_30d) as count_views_30d,
        any_value(oldest.count_carts_30d) as count_carts_30d,
        any_value(oldest.count_purchases_30d) as count_purchases_30d,
        any_value(oldest.count_purchases_lifetime) as count_purchases_lifetime,
        any_value(oldest.count_purchase_days_lifetime) as count_purchase_days_lifetime,
        any_value(oldest.days_since_last_purchase) as days_since_last_purchase,
        any_value(oldest.days_since_last_activity) as days_since_last_activity,
        count(*) filter (where event_type = 'view' and event_at >= oldest.as_of_date - {{ window_days }}) as views_30d,
        count(*) filter (where event_type = 'cart' and event_at >= oldest.as_of_date - {{ window_days }}) as carts_30d,
        count(distinct (coalesce(order_id, event_id), cast(event_at as date))) filter (
            where event_type = 'purchase' and event_at >= oldest.as_of_date - {{ window_days }}) as orders_30d,
        coalesce(any_value(at_checkpoint.lifetime_orders), 0) + count(distinct (coalesce(order_id, event_id), cast(event_at as date))) filter (
            where event_type = 'purchase' and event_at >= oldest.checkpoint_date) as orders_lifetime,
        coalesce(any_value(at_checkpoint.lifetime_purchase_days), 0) + count(distinct cast(event_at as date)) filter (
            where event_type = 'purchase' and event_at >= oldest.checkpoint_date) as purchase_days_lifetime,
        {{ days_between('greatest(
            any_value(at_checkpoint.last_purchase_date),
            max(cast(event_at as date)) filter (where event_type = \'purchase\' and event_at >= oldest.checkpoint_date)
        )', 'oldest.as_of_date') }} as purchase_recency,
        {{ days_between('greatest(
            any_value(at_checkpoint.activity_date),
            max(cast(event_at as date)) filter (where event_at >= oldest.checkpoint_date)
        )', 'oldest.as_of_date') }} as activity_recency
    from oldest
    left join at_checkpoint using (user_id)
    left join clean_events
        on oldest.user_id = clean_events.user_id
        and clean_events.event_at < oldest.as_of_date
    group by 1, 2
)

select user_id, as_of_date, 'features differ from events strictly before the as-of date' as problem
from recounted
where views_30d <> count_views_30d
   or carts_30d <> count_carts_30d
   or orders_30d <> count_purchases_30d
   or orders_lifetime <> count_purchases_lifetime
   or purchase_days_lifetime <> count_purchase_days_lifetime
   or purchase_recency is distinct from days_since_last_purchase
   or activity_recency is distinct from days_since_last_activity
