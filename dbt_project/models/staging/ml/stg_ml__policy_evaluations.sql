with

source as (
    select * from {{ source('ml', 'policy_evaluations') }}
),

renamed as (
    select
        cast(evaluation_date as date) as evaluation_date,
        cast(policy as string) as policy,
        cast(evidence_source as string) as evidence_source,
        cast(leader_policy as string) as leader_policy,
        cast(value as double) as value,
        cast(value_ci_low as double) as value_ci_low,
        cast(value_ci_high as double) as value_ci_high,
        cast(difference_to_leader as double) as difference_to_leader,
        cast(difference_ci_low as double) as difference_ci_low,
        cast(difference_ci_high as double) as difference_ci_high,
        cast(n_users as bigint) as n_users,
        cast(n_days as bigint) as n_days
    from source
)

select * from renamed
