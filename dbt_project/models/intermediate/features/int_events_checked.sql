{{
    config(
        materialized='incremental',
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

-- Event ids already landed on an earlier day (kept: the first occurrence wins), so these are duplicates.
-- Landing gives every event an id (derived from its content when the export has none).
seen_before as (
    {% if is_incremental() -%}
    select distinct earlier.event_id
    from {{ this }} as earlier
    semi join events on earlier.event_id = events.event_id
    {%- else -%}
    select cast(null as varchar) as event_id where false
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
        events.* exclude (category),
        coalesce(events.category, products.category) as category,
        users.user_id is not null or not user_table.is_landed as is_known_user,
        seen_before.event_id is not null as is_seen_before,
        row_number() over (
            partition by events.event_id order by events.event_date, events.source_file, events.event_at
        ) as event_id_occurrence,
    from events
    cross join user_table
    left join seen_before on events.event_id = seen_before.event_id
    left join users on events.user_id = users.user_id
    left join products on events.product_id = products.product_id
),

checked as (
    select
        * exclude (is_known_user, event_id_occurrence, is_seen_before),
        case
            when parse_errors is not null then 'unparseable value: ' || parse_errors
            when user_id is null then 'missing user_id'
            when event_at is null then 'missing event time'
            when event_type not in ('view', 'cart', 'remove_from_cart', 'purchase') or event_type is null
                then 'unknown event type'
            when unit_price < 0 then 'negative price'
            when event_type = 'purchase' and unit_price is null then 'purchase without price'
            when quantity <= 0 then 'non-positive quantity'
            when cast(event_at as date) <> event_date then 'timestamp outside the partition day'
            when event_id_occurrence > 1 or is_seen_before then 'duplicate event_id'
            when not is_known_user then 'unknown user'
        end as quarantine_reason,
    from numbered
)

select * from checked
