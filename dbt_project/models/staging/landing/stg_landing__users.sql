-- No contact data in clear: landing stored the email as a keyed pseudonym and dropped the phone (ml.privacy).
-- Empty when the shop sent no user table (int_users_resolved then derives users from their first event).
with

source as (
    {{ source_or_empty('landing', 'users', {
        'user_id': 'bigint',
        'signup_at': 'timestamp',
        'country': 'varchar',
        'device': 'varchar',
        'marketing_consent': 'boolean',
        'email_hash': 'varchar',
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
        cast(email_hash as varchar) as email_hash,
    from source
)

select * from renamed
