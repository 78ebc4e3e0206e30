-- Every landed event that failed validation, with the reason. Rebuilt whole from the landing files,
-- so a fixed and re-landed day leaves no stale rows behind.
with

checked as (
    select * from {{ ref('int_events_checked') }}
),

quarantined as (
    select
        event_id,
        event_date,
        event_at,
        event_type,
        user_id,
        product_id,
        unit_price,
        quantity,
        session_id,
        order_id,
        parse_errors,
        source_file,
        quarantine_reason,
    from checked
    where quarantine_reason is not null
)

select * from quarantined
