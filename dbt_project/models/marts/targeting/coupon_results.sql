-- One row per send date (as_of_date), policy arm and coupon: treated users against their randomised
-- holdout in the 7-day coupon window and the 30 days after the send, with 95% confidence intervals
-- (normal approximation to the difference of two means). Window figures stay null until it has landed.
-- The intervals use the pooled variance of treated and held-out users: a holdout of a few users, most
-- of whom buy nothing, understates the spread of purchases and revenue on its own.
-- Revenue (and so margin) is adjusted by each user's pre-send spend (CUPED): treated minus holdout revenue
-- minus theta x (treated minus holdout pre-send spend), theta the policy's slope of revenue on pre-send spend
-- within groups, pooled over its matured send dates and coupons (one group's few users would give a noisy
-- slope). Pre-send spend was fixed before the send, so the estimate keeps its expectation and loses the
-- spread the covariate explains; the *_width_ratio columns say by how much. Purchases are not adjusted.
with

outcomes as (
    -- A row built before pre_send_revenue existed counts with 0: any pre-send quantity is a fair covariate.
    select * except (pre_send_revenue), coalesce(pre_send_revenue, 0) as pre_send_revenue
    from {{ ref('int_coupon_target_outcomes') }}
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
        avg(cast(has_purchase_{{ window }} as double)) filter (where not is_holdout) as rate_t_{{ window }},
        avg(cast(has_purchase_{{ window }} as double)) filter (where is_holdout) as rate_h_{{ window }},
        var_samp(has_purchase_{{ window }}::double) filter (where not is_holdout) as rate_var_t_{{ window }},
        var_samp(has_purchase_{{ window }}::double) filter (where is_holdout) as rate_var_h_{{ window }},
        avg(revenue_{{ window }}) filter (where not is_holdout) as revenue_t_{{ window }},
        avg(revenue_{{ window }}) filter (where is_holdout) as revenue_h_{{ window }},
        var_samp(revenue_{{ window }}) filter (where not is_holdout) as revenue_var_t_{{ window }},
        var_samp(revenue_{{ window }}) filter (where is_holdout) as revenue_var_h_{{ window }},
        {%- for arm, condition in [('t', 'not is_holdout'), ('h', 'is_holdout')] %}
        -- Sums of squares and cross-products about the arm's own means (the regression adjustment's inputs).
        coalesce(regr_sxy(revenue_{{ window }}, pre_send_revenue) filter (where {{ condition }}), 0)
            as sxy_{{ arm }}_{{ window }},
        coalesce(regr_sxx(revenue_{{ window }}, pre_send_revenue) filter (where {{ condition }}), 0)
            as sxx_{{ arm }}_{{ window }},
        coalesce(regr_syy(revenue_{{ window }}, pre_send_revenue) filter (where {{ condition }}), 0)
            as syy_{{ arm }}_{{ window }},
        {%- endfor %}
        {%- endfor %}
        avg(pre_send_revenue) filter (where not is_holdout) as pre_send_t,
        avg(pre_send_revenue) filter (where is_holdout) as pre_send_h,
        coalesce(sum(coupon_cost_7d) filter (where not is_holdout), 0) as coupon_cost,
        coalesce(sum(expected_cost) filter (where not is_holdout), 0) as expected_cost
    from outcomes
    group by 1, 2, 3
),

-- Per policy and window: the slope of revenue on pre-send spend within groups, over its matured groups.
slopes as (
    select
        policy,
        {%- for window in ['7d', '30d'] %}
        coalesce(
            sum(sxy_t_{{ window }} + sxy_h_{{ window }}) filter (where is_matured_{{ window }})
            / nullif(sum(sxx_t_{{ window }} + sxx_h_{{ window }}) filter (where is_matured_{{ window }}), 0),
            0
        ) as theta_{{ window }}{{ ',' if not loop.last }}
        {%- endfor %}
    from by_group
    group by 1
),

adjusted as (
    select
        by_group.*,
        {%- for window in ['7d', '30d'] %}
        slopes.theta_{{ window }},
        -- Pooled within-arm variance of revenue - theta x pre-send spend.
        (syy_t_{{ window }} + syy_h_{{ window }}
            - 2 * slopes.theta_{{ window }} * (sxy_t_{{ window }} + sxy_h_{{ window }})
            + power(slopes.theta_{{ window }}, 2) * (sxx_t_{{ window }} + sxx_h_{{ window }}))
            / nullif(n_treated + n_holdout - 2, 0) as revenue_var_adjusted_{{ window }}{{ ',' if not loop.last }}
        {%- endfor %}
    from by_group
    inner join slopes using (policy)
),

estimates as (
    select
        *,
        {%- for window in ['7d', '30d'] %}
        n_treated * (rate_t_{{ window }} - rate_h_{{ window }}) as incr_purchases_{{ window }},
        n_treated * (revenue_t_{{ window }} - revenue_h_{{ window }} - theta_{{ window }} * (pre_send_t - pre_send_h))
            as incr_revenue_{{ window }},
        1.96 * n_treated * sqrt(
            ((n_treated - 1) * coalesce(rate_var_t_{{ window }}, 0) + (n_holdout - 1) * coalesce(rate_var_h_{{ window }}, 0))
            / nullif(n_treated + n_holdout - 2, 0)
            * (1 / cast(n_treated as double) + 1 / cast(n_holdout as double))
        ) as incr_purchases_{{ window }}_half,
        1.96 * n_treated * sqrt(greatest(revenue_var_adjusted_{{ window }}, 0) * (1 / cast(n_treated as double) + 1 / cast(n_holdout as double)))
            as incr_revenue_{{ window }}_half,
        -- The adjusted interval's width over the unadjusted one's (pooled variances; null when it has none).
        sqrt(greatest(revenue_var_adjusted_{{ window }}, 0) / nullif(
            ((n_treated - 1) * coalesce(revenue_var_t_{{ window }}, 0) + (n_holdout - 1) * coalesce(revenue_var_h_{{ window }}, 0))
            / nullif(n_treated + n_holdout - 2, 0), 0)) as width_ratio_{{ window }}{{ ',' if not loop.last }}
        {%- endfor %}
    from adjusted
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
        case when is_matured_{{ window }} then width_ratio_{{ window }} end as revenue_ci_width_ratio_{{ window }},
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
            as return_per_euro_{{ window }}{{ ',' if not loop.last }}
        {%- endfor %}
    from estimates
)

select * from results
