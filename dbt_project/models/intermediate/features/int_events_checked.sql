-- Every landed event with the first validation rule it breaks (null when it is clean).
-- Clean rows feed the features; the rest go to events_quarantine with the reason. Nothing is dropped.
with

events as (
    select * from {{ ref('stg_landing__events') }}
),

users as (
    select user_id from {{ ref('stg_landing__users') }}
),

numbered as (
    select
        events.*,
        users.user_id is not null as is_known_user,
        row_number() over (
            partition by events.event_id order by events.event_date, events.source_file, events.event_at
        ) as event_id_occurrence,
    from events
    left join users on events.user_id = users.user_id
),

checked as (
    select
        * exclude (is_known_user, event_id_occurrence),
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
            when event_id_occurrence > 1 then 'duplicate event_id'
            when not is_known_user then 'unknown user'
        end as quarantine_reason,
    from numbered
)

select * from checked
