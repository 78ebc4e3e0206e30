{{ config(tags=['features']) }}
-- A flood of bad rows is a failure, not a quarantine count: fails for any event day feeding this run's
-- as-of dates whose quarantined share is above var('max_quarantine_share').
with

built as (
    select min(as_of_date) - 1 as first_day, max(as_of_date) - 1 as last_day
    from {{ ref('int_as_of_dates') }}
),

days as (
    select * from {{ ref('landing_daily_summary') }}
)

select days.*
from days
cross join built
where days.event_date between built.first_day and built.last_day
  and days.quarantined_share > {{ var('max_quarantine_share') }}
