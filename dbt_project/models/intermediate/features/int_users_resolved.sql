-- One row per known user. With a landed user table, exactly its users. Without one (a purchase log, an
-- event export and nothing else), every user with a clean event, signed up at their first event, with
-- unknown country and device and no recorded marketing consent.
with

landed_users as (
    select user_id, signup_at, signup_date, country, device, has_marketing_consent, false as is_derived_from_events
    from {{ ref('stg_landing__users') }}
),

user_table as (
    select count(*) > 0 as is_landed from landed_users
),

-- Read only without a user table: the filter in the scan skips every event (filtered after the aggregation,
-- the first events of a year of history cost every daily run 1-4 s at 200k users).
first_events as (
    select
        user_id,
        min(event_at) as signup_at
    from {{ ref('int_events_checked') }}
    where quarantine_reason is null
        and not (select is_landed from user_table)
    group by 1
),

derived_users as (
    select
        first_events.user_id,
        first_events.signup_at,
        cast(first_events.signup_at as date) as signup_date,
        'unknown' as country,
        'unknown' as device,
        false as has_marketing_consent,
        true as is_derived_from_events
    from first_events
)

select * from landed_users
union all
select * from derived_users
