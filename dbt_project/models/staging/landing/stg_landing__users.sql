-- PII never leaves staging in clear text: email is hashed (for joins with other systems), phone dropped.
-- Empty when the shop sent no user table (int_users_resolved then derives users from their first event).
with

source as (
    {{ source_or_empty('landing', 'users', {
        'user_id': 'bigint',
        'signup_at': 'timestamp',
        'country': 'varchar',
        'device': 'varchar',
        'marketing_consent': 'boolean',
        'email': 'varchar',
    }) }}
),

renamed as (
    select
        cast(user_id as bigint) as user_id,
        cast(signup_at as timestamp) as signup_at,
        cast(signup_at as date) as signup_date,
        coalesce(cast(country as varchar), 'unknown') as country,
        coalesce(cast(device as varchar), 'unknown') as device,
        coalesce(cast(marketing_consent as boolean), false) as has_marketing_consent,
        sha256(lower(trim(cast(email as varchar)))) as email_sha256,
    from source
)

select * from renamed
