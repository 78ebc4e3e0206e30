{#- The top categories for each (user_id, as_of_date) row of `users` (a relation or CTE name), from the user's
    own implicit feedback before the as-of date, smoothed toward the shop's popular categories:

        score(c) = (feedback(c) + prior_weight x popularity(c)) / (feedback(all) + prior_weight)

    feedback: views + 3 x cart adds + 10 x purchased lines in the `feedback_days` before the date, each day
    weighted by 0.5 ^ (age / half_life_days), so last week counts more than last quarter. popularity: each
    category's share of the purchased lines of the 30 days before the date. A user with no feedback gets the
    popular categories; one with a little gets their own first and the popular ones after. Candidates are the
    user's own categories and the `top_n` popular ones, so the cost grows with what users touched, not with
    users x categories. Ties go to the more popular category, then by name. -#}
{%- macro category_recommendations(users, top_n=3, feedback_days=180, half_life_days=30, prior_weight=5) -%}
with

rec_dates as (
    select distinct as_of_date from {{ users }}
),

rec_popularity as (
    {{ category_popularity('rec_dates') }}
),

rec_popular as (
    select * from rec_popularity where popularity_rank <= {{ top_n }}
),

rec_feedback as (
    select
        users.user_id,
        users.as_of_date,
        days.category,
        sum(
            (days.count_views + 3 * days.count_carts + 10 * days.count_purchases)
            * power(0.5, cast({{ days_between('days.activity_date', 'users.as_of_date') }} - 1 as double) / {{ half_life_days }})
        ) as feedback
    from {{ users }} as users
    inner join {{ ref('int_user_category_days') }} as days
        on days.user_id = users.user_id
        and days.activity_date < users.as_of_date
        and days.activity_date >= users.as_of_date - {{ feedback_days }}
    group by 1, 2, 3
),

rec_candidates as (
    select user_id, as_of_date, category, feedback from rec_feedback
    union all
    select users.user_id, users.as_of_date, rec_popular.category, 0.0 as feedback
    from {{ users }} as users
    inner join rec_popular using (as_of_date)
),

rec_scored as (
    select
        candidates.user_id,
        candidates.as_of_date,
        candidates.category,
        sum(candidates.feedback) as feedback,
        coalesce(any_value(rec_popularity.popularity), 0) as popularity
    from rec_candidates as candidates
    left join rec_popularity using (as_of_date, category)
    group by 1, 2, 3
),

rec_ranked as (
    select
        user_id,
        as_of_date,
        category,
        -- Rounded: float sums depend on the order rows were added in, and a rerun must rank and write the same.
        round(
            (feedback + {{ prior_weight }} * popularity)
            / (sum(feedback) over (partition by user_id, as_of_date) + {{ prior_weight }}), 9
        ) as affinity,
        case when feedback > 0 then 'own_history' else 'popular' end as basis,
        row_number() over (
            partition by user_id, as_of_date
            order by round(feedback + {{ prior_weight }} * popularity, 9) desc, round(popularity, 9) desc, category
        ) as recommendation_rank
    from rec_scored
)

select * from rec_ranked where recommendation_rank <= {{ top_n }}
{%- endmacro -%}


{#- Each category's share of the shop's purchased lines in the 30 days before each as_of_date of `dates` (a
    relation or CTE name), and its rank (1 = sold most; ties by name). Only categories that sold. The popular
    candidates of category_recommendations and the popularity baseline of recommendation_quality. -#}
{%- macro category_popularity(dates) -%}
    select
        dates.as_of_date,
        days.category,
        cast(sum(days.count_purchases) as double) / sum(sum(days.count_purchases)) over (partition by dates.as_of_date)
            as popularity,
        row_number() over (partition by dates.as_of_date order by sum(days.count_purchases) desc, days.category)
            as popularity_rank
    from {{ dates }} as dates
    inner join {{ ref('int_user_category_days') }} as days
        on days.activity_date < dates.as_of_date and days.activity_date >= dates.as_of_date - 30
    group by 1, 2
    having sum(days.count_purchases) > 0
{%- endmacro -%}
