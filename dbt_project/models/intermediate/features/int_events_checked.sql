{{
    config(
        materialized='incremental',
        partition_by=day_partitions('event_date'),
        incremental_strategy='append',
        pre_hook="{{ delete_reprocessed('event_date') }}",
    )
}}
-- Every landed event with the first validation rule it breaks (null when it is clean).
-- Clean rows feed the features; the rest go to events_quarantine with the reason. Nothing is dropped.
-- Incremental by day (macros/reprocess_window.sql): only the re-processed days are read from landing.
with

events as (
    select * from {{ ref('stg_landing__events') }}
    where {{ in_reprocess_window('event_date') }}
),

-- Each event id's newest occurrence on an earlier day within the duplicate window: a duplicate when it falls in
-- the `duplicate_window_days` before the event's own day (the first occurrence by day and file is kept).
-- Landing gives every event an id (derived from its content when the export has none). The window bounds the
-- check's cost by days, not history; a copy of the same event sent on a later day has a timestamp outside its
-- partition day and is quarantined for that whatever the window.
seen_before as (
    {% if is_incremental() and reprocess_from() -%}
    select earlier.event_id, max(earlier.event_date) as event_date
    from {{ this }} as earlier
    semi join events on earlier.event_id = events.event_id
    where earlier.event_date >= {{ reprocess_from() }} - {{ var('duplicate_window_days') }}
      and earlier.event_date < {{ reprocess_from() }}
    group by 1
    {%- else -%}
    select cast(null as string) as event_id, cast(null as date) as event_date where false
    {%- endif %}
),

users as (
    select user_id from {{ ref('stg_landing__users') }}
),

products as (
    select product_id, category from {{ ref('stg_landing__products') }}
),

-- Without a user table every user id is known: a user's first event is their signup.
user_table as (
    select count(*) > 0 as is_landed from users
),

numbered as (
    select
        events.* except (category),
        coalesce(events.category, products.category) as category,
        users.user_id is not null or not user_table.is_landed as is_known_user,
        -- The previous occurrence: an earlier row of this run (ordered by day, file and time) or an earlier day's.
        coalesce(
            lag(events.event_date) over (
                partition by events.event_id order by events.event_date, events.source_file, events.event_at
            ),
            seen_before.event_date
        ) >= events.event_date - {{ var('duplicate_window_days') }} as is_duplicate
    from events
    cross join user_table
    left join seen_before on events.event_id = seen_before.event_id
    left join users on events.user_id = users.user_id
    left join products on events.product_id = products.product_id
),

checked as (
    select
        * except (is_known_user, is_duplicate),
        case
            when parse_errors is not null then 'unparseable value: ' || parse_errors
            when user_id is null then 'missing user_id'
            when event_at is null then 'missing event time'
            when event_type not in ('view', 'cart', 'remove_from_cart', 'purchase', 'search', 'favourite')
                or event_type is null
                then 'unknown event type'
            when unit_price < 0 then 'negative price'
            when event_type = 'purchase' and unit_price is null then 'purchase without price'
            when quantity <= 0 then 'non-positive quantity'
            when cast(event_at as date) <> event_date then 'timestamp outside the partition day'
            when is_duplicate then 'duplicate event_id'
            when not is_known_user then 'unknown user'
        end as quarantine_reason
    from numbered
)

select * from checked
