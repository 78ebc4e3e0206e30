{{
    config(
        materialized='incremental',
        partition_by=day_partitions('event_date'),
        incremental_strategy='append',
        pre_hook="{{ delete_reprocessed('event_date') }}",
    )
}}
-- One row per landed event day: how many events arrived, how many were quarantined and why.
with

checked as (
    select * from {{ ref('int_events_checked') }}
    where {{ in_reprocess_window('event_date') }}
),

daily as (
    select
        event_date,
        count(*) as count_events,
        count(*) filter (where quarantine_reason is not null) as count_quarantined,
        count(*) filter (where quarantine_reason is not null) / count(*) as quarantined_share
    from checked
    group by 1
)

select * from daily
