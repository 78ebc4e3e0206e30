-- How well the category recommendations predict what users buy next, out of time: for the 4 newest Mondays
-- whose 30 following days have landed, the recommendations as of that Monday (the same macro as
-- user_recommendations, from the days before it only) against the categories each buyer bought in the 30 days
-- from it. Beside them the baseline every shop has: the 3 categories that sold most in the 30 days before.
-- recall_at_3: the share of a buyer's bought categories among the 3; ndcg_at_3: the same, weighted by rank.
with

landed as (
    {{ newest_landed_day() }}
),

evaluation_dates as (
    select distinct activity_date as as_of_date
    from {{ ref('int_user_category_days') }}
    cross join landed
    where {{ iso_weekday('activity_date') }} = 1 and {{ is_matured('activity_date', var('label_horizon_days')) }}
    order by 1 desc
    limit 4
),

bought as (
    select distinct evaluation_dates.as_of_date, days.user_id, days.category
    from evaluation_dates
    inner join {{ ref('int_user_category_days') }} as days
        on days.activity_date >= evaluation_dates.as_of_date
        and days.activity_date < evaluation_dates.as_of_date + {{ var('label_horizon_days') }}
    where days.count_purchases > 0
),

buyers as (
    select as_of_date, user_id, count(*) as count_bought from bought group by 1, 2
),

personal as (
    {{ category_recommendations('buyers') }}
),

popularity as (
    {{ category_popularity('evaluation_dates') }}
),

popular as (
    -- The popularity baseline: the same top categories for everyone (the candidates the macro adds).
    select buyers.as_of_date, buyers.user_id, popularity.category, popularity.popularity_rank as recommendation_rank
    from buyers
    inner join popularity using (as_of_date)
    where popularity.popularity_rank <= 3
),

recommended as (
    select 'category_affinity' as method, as_of_date, user_id, category, recommendation_rank from personal
    union all
    select 'popularity' as method, as_of_date, user_id, category, recommendation_rank from popular
),

per_buyer as (
    select
        recommended.method,
        buyers.as_of_date,
        buyers.user_id,
        cast(count(bought.category) as double) / buyers.count_bought as recall_at_3,
        coalesce(sum(1.0 / log2(recommended.recommendation_rank + 1)) filter (where bought.category is not null), 0)
            / (case least(buyers.count_bought, 3) when 1 then 1.0 when 2 then 1.0 + 1.0 / log2(3) else 1.0 + 1.0 / log2(3) + 0.5 end)
            as ndcg_at_3
    from buyers
    inner join recommended using (as_of_date, user_id)
    left join bought
        on bought.as_of_date = recommended.as_of_date
        and bought.user_id = recommended.user_id
        and bought.category = recommended.category
    group by 1, 2, 3, buyers.count_bought
)

select
    as_of_date as evaluation_date,
    method,
    count(*) as n_buyers,
    avg(recall_at_3) as recall_at_3,
    avg(ndcg_at_3) as ndcg_at_3
from per_buyer
group by 1, 2
