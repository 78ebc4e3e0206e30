"""Category recommendations measured out of time on the small shop: they beat the popularity baseline."""

from __future__ import annotations

from datetime import timedelta

from ml.warehouse.dbt_runner import run_dbt
from tests.checksums import query


def test_recommendations_beat_popularity_on_the_next_30_days_purchases(built_shop, shop_copy):
    shop = shop_copy(built_shop)
    run_dbt(["build", "--select", "recommendation_quality"], echo=False)
    rows = query(
        shop.warehouse,
        "select evaluation_date, method, n_buyers, recall_at_3, ndcg_at_3 from recommendation_quality order by 1, 2",
    )
    newest_day = query(shop.warehouse, "select max(event_date) from stg_landing__events")[0][0]
    dates = sorted({row[0] for row in rows})
    # The 4 newest Mondays whose 30 following days have landed, each with both methods on the same buyers.
    assert len(dates) == 4 and all(d.isoweekday() == 1 for d in dates)
    assert dates[-1] + timedelta(days=30) <= newest_day + timedelta(days=1) < dates[-1] + timedelta(days=37)
    by_date = {d: {method: (n, recall, ndcg) for day, method, n, recall, ndcg in rows if day == d} for d in dates}
    for d, methods in by_date.items():
        (n_own, recall_own, ndcg_own), (n_popular, recall_popular, ndcg_popular) = (
            methods["category_affinity"],
            methods["popularity"],
        )
        assert n_own == n_popular > 50
        assert 0 <= recall_popular < recall_own <= 1 and 0 <= ndcg_popular < ndcg_own <= 1
        assert recall_own - recall_popular >= 0.1, (d, recall_own, recall_popular)
