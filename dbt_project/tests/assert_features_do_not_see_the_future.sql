-- Point in time: no feature for as_of_date T may reflect an event at or after T.
-- 1. Every recency is at least one day for every as-of date built in this run.
-- 2. For the newest as-of date built, view, cart and order counts recomputed straight from the clean
--    events with event_at < T match the features exactly.
with

built as (
    select as_of_date from {{ ref('int_as_of_dates') }}
),

features as (
    select user_features.*
    from {{ ref('user_features') }}
    inner join built using (as_of_date)
),

recency_violations as (
    select user_id, as_of_date, 'recency under one day' as problem
    from features
    where days_since_last_activity < 1
       or days_since_last_view < 1
       or days_since_last_cart < 1
       or days_since_last_purchase < 1
       or days_since_last_coupon < 1
),

newest as (
    select * from features
    where as_of_date = (select max(as_of_date) from built)
),

clean_events as (
    select * from {{ ref('int_events_checked') }}
    where quarantine_reason is null
),

recounted as (
    select
        newest.user_id,
        newest.as_of_date,
        newest.count_views_90d,
        newest.count_carts_90d,
        newest.count_purchases_lifetime,
        count(*) filter (where event_type = 'view' and event_at >= newest.as_of_date - 90) as views_90d,
        count(*) filter (where event_type = 'cart' and event_at >= newest.as_of_date - 90) as carts_90d,
        count(distinct coalesce(order_id, event_id)) filter (where event_type = 'purchase') as orders_lifetime,
    from newest
    left join clean_events
        on newest.user_id = clean_events.user_id
        and clean_events.event_at < newest.as_of_date
    group by 1, 2, 3, 4, 5
),

count_violations as (
    select user_id, as_of_date, 'counts differ from events strictly before the as-of date' as problem
    from recounted
    where views_90d <> count_views_90d
       or carts_90d <> count_carts_90d
       or orders_lifetime <> count_purchases_lifetime
)

select * from recency_violations
union all
select * from count_violations
