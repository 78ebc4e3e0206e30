-- Empty when the shop never ran a randomised campaign: coupon features are then zero.
-- A table on Spark: the send list's step reads it from its Parquet files (ml/warehouse/read.py: spark_tables).
{{ config(materialized=('table' if target.type == 'spark' else 'view')) }}

with

source as (
    {{ source_or_empty('landing', 'coupon_sends', {
        'campaign_id': 'string',
        'user_id': 'bigint',
        'sent_at': 'timestamp',
        'send_date': 'date',
        'group_name': 'string',
        'coupon_code': 'string',
    }) }}
),

renamed as (
    select
        cast(campaign_id as string) as campaign_id,
        cast(user_id as bigint) as user_id,
        cast(sent_at as timestamp) as sent_at,
        cast(send_date as date) as send_date,
        cast(group_name as string) as group_name,
        cast(coupon_code as string) as coupon_code,
        group_name = 'treatment' as is_treatment
    from source
)

select * from renamed
