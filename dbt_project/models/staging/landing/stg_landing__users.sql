-- No contact data in clear: landing stored the email as a keyed pseudonym and dropped the phone (ml.privacy).
-- Empty when the shop sent no user table (int_users_resolved then derives users from their first event).
with

source as (
    {{ source_or_empty('landing', 'users', {
        'user_id': 'bigint',
        'signup_at': 'timestamp',
        'country': 'string',
        'device': 'string',
        'marketing_consent': 'boolean',
        'email_hash': 'string',
    }) }}
),

renamed as (
    select
        cast(user_id as bigint) as user_id,
        cast(signup_at as timestamp) as signup_at,
        cast(signup_at as date) as signup_date,
        coalesce(cast(country as string), 'unknown') as country,
        coalesce(cast(device as string), 'unknown') as device,
        coalesce(cast(marketing_consent as boolean), false) as has_marketing_consent,
        cast(email_hash as string) as email_hash
    from source
)

select * from renamed
