{{
    config(
        materialized='incremental',
        partition_by=day_partitions('event_date'),
        incremental_strategy='append',
        pre_hook="{{ delete_reprocessed('event_date') }}",
    )
}}
-- Every landed event that failed validation, with the reason. The re-processed days are emptied and
-- rebuilt from the landing files, so a fixed and re-landed day leaves no stale rows behind.
with

checked as (
    select * from {{ ref('int_events_checked') }}
    where {{ in_reprocess_window('event_date') }}
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
        quarantine_reason
    from checked
    where quarantine_reason is not null
)

select * from quarantined
