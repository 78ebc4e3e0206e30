-- One row per send date (as_of_date), policy arm and coupon: treated users against their randomised
-- holdout in the 7-day coupon window and the 30 days after the send, with 95% confidence intervals
-- (normal approximation to the difference of two means). Window figures stay null until it has landed.
-- The intervals use the pooled variance of treated and held-out users: a holdout of a few users, most
-- of whom buy nothing, understates the spread of purchases and revenue on its own.
with

outcomes as (
    select * from {{ ref('int_coupon_target_outcomes') }}
),

by_group as (
    select
        as_of_date,
        policy,
        coupon_code,
        count(*) filter (where not is_holdout) as n_treated,
        count(*) filter (where is_holdout) as n_holdout,
        bool_and(is_matured_7d) as is_matured_7d,
        bool_and(is_matured_30d) as is_matured_30d,
        {%- for window in ['7d', '30d'] %}
        avg(has_purchase_{{ window }}) filter (where not is_holdout) as rate_t_{{ window }},
        avg(has_purchase_{{ window }}) filter (where is_holdout) as rate_h_{{ window }},
        var_samp(has_purchase_{{ window }}::double) filter (where not is_holdout) as rate_var_t_{{ window }},
        var_samp(has_purchase_{{ window }}::double) filter (where is_holdout) as rate_var_h_{{ window }},
        avg(revenue_{{ window }}) filter (where not is_holdout) as revenue_t_{{ window }},
        avg(revenue_{{ window }}) filter (where is_holdout) as revenue_h_{{ window }},
        var_samp(revenue_{{ window }}) filter (where not is_holdout) as revenue_var_t_{{ window }},
        var_samp(revenue_{{ window }}) filter (where is_holdout) as revenue_var_h_{{ window }},
        {%- endfor %}
        coalesce(sum(coupon_cost_7d) filter (where not is_holdout), 0) as coupon_cost,
        coalesce(sum(expected_cost) filter (where not is_holdout), 0) as expected_cost,
    from outcomes
    group by 1, 2, 3
),

estimates as (
    select
        *,
        {%- for window in ['7d', '30d'] %}
        n_treated * (rate_t_{{ window }} - rate_h_{{ window }}) as incr_purchases_{{ window }},
        n_treated * (revenue_t_{{ window }} - revenue_h_{{ window }}) as incr_revenue_{{ window }},
        {%- for measure in ['rate', 'revenue'] %}
        1.96 * n_treated * sqrt(
            ((n_treated - 1) * coalesce({{ measure }}_var_t_{{ window }}, 0)
                + (n_holdout - 1) * coalesce({{ measure }}_var_h_{{ window }}, 0))
            / nullif(n_treated + n_holdout - 2, 0)
            * (1.0 / n_treated + 1.0 / n_holdout)
        ) as {{ 'incr_purchases' if measure == 'rate' else 'incr_revenue' }}_{{ window }}_half,
        {%- endfor %}
        {%- endfor %}
    from by_group
),

results as (
    select
        as_of_date as send_date,
        policy,
        coupon_code,
        n_treated,
        n_holdout,
        cast(expected_cost as double) as expected_cost,
        is_matured_7d,
        is_matured_30d,
        {%- for window in ['7d', '30d'] %}
        case when is_matured_{{ window }} then cast(rate_t_{{ window }} as double) end as purchase_rate_treated_{{ window }},
        case when is_matured_{{ window }} then cast(rate_h_{{ window }} as double) end as purchase_rate_holdout_{{ window }},
        case when is_matured_{{ window }} then revenue_t_{{ window }} end as revenue_per_user_treated_{{ window }},
        case when is_matured_{{ window }} then revenue_h_{{ window }} end as revenue_per_user_holdout_{{ window }},
        case when is_matured_{{ window }} then incr_purchases_{{ window }} end as incremental_purchases_{{ window }},
        case when is_matured_{{ window }} then incr_purchases_{{ window }} - incr_purchases_{{ window }}_half end
            as incremental_purchases_{{ window }}_ci_low,
        case when is_matured_{{ window }} then incr_purchases_{{ window }} + incr_purchases_{{ window }}_half end
            as incremental_purchases_{{ window }}_ci_high,
        case when is_matured_{{ window }} then incr_revenue_{{ window }} end as incremental_revenue_{{ window }},
        case when is_matured_{{ window }} then incr_revenue_{{ window }} - incr_revenue_{{ window }}_half end
            as incremental_revenue_{{ window }}_ci_low,
        case when is_matured_{{ window }} then incr_revenue_{{ window }} + incr_revenue_{{ window }}_half end
            as incremental_revenue_{{ window }}_ci_high,
        {%- endfor %}
        case when is_matured_7d then cast(coupon_cost as double) end as coupon_cost,
        {%- for window in ['7d', '30d'] %}
        case when is_matured_{{ window }}
            then incr_revenue_{{ window }} * {{ var('gross_margin_rate') }} - coupon_cost end
            as incremental_margin_{{ window }},
        case when is_matured_{{ window }}
            then (incr_revenue_{{ window }} - incr_revenue_{{ window }}_half) * {{ var('gross_margin_rate') }} - coupon_cost end
            as incremental_margin_{{ window }}_ci_low,
        case when is_matured_{{ window }}
            then (incr_revenue_{{ window }} + incr_revenue_{{ window }}_half) * {{ var('gross_margin_rate') }} - coupon_cost end
            as incremental_margin_{{ window }}_ci_high,
        case when is_matured_{{ window }} and coupon_cost > 0
            then (incr_revenue_{{ window }} * {{ var('gross_margin_rate') }} - coupon_cost) / coupon_cost end
            as return_per_euro_{{ window }},
        {%- endfor %}
    from estimates
)

select * from results
