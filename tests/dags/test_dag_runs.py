"""Real DAG runs (dag.test) on a small shop: two days, then a rerun of the first, with an analyst reading."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from tests.checksums import query, table_checksums

DAGS = Path(__file__).resolve().parents[2] / "dags"
MARTS = ["user_features", "training_labels", "events_quarantine", "user_segments", "coupon_targets", "stg_ml__scores"]
pytestmark = pytest.mark.slow


def _run(dag, day) -> str:
    run = dag.test(logical_date=datetime(day.year, day.month, day.day, tzinfo=UTC), run_conf={"run_date": str(day)})
    return str(run.state)


def test_two_days_then_a_rerun_of_the_first_are_identical_and_an_open_analyst_session_survives(
    airflow_db, built_shop, shop_copy
):
    from airflow.dag_processing.dagbag import DagBag

    from ml.warehouse import publish_snapshot

    shop = shop_copy(built_shop)
    snapshot = publish_snapshot()
    analyst = duckdb.connect(str(snapshot), read_only=True)
    dates_before = analyst.execute("select count(distinct as_of_date) from user_features").fetchone()[0]

    dag = DagBag(dag_folder=str(DAGS)).get_dag("shop_daily")
    first, second = shop.remaining_days[:2]
    assert _run(dag, first) == "success"
    # The analyst's session stays open and keeps reading the snapshot it opened.
    assert analyst.execute("select count(distinct as_of_date) from user_features").fetchone()[0] == dates_before
    assert _run(dag, second) == "success"
    after_two_days = table_checksums(shop.warehouse, MARTS)
    scores_after = {p.name: p.read_bytes() for p in (shop.data / "scores").rglob("*.parquet")}

    assert _run(dag, first) == "success"
    assert table_checksums(shop.warehouse, MARTS) == after_two_days
    assert {p.name: p.read_bytes() for p in (shop.data / "scores").rglob("*.parquet")}.keys() == scores_after.keys()

    per_day = dict(query(shop.warehouse, "select as_of_date, count(*) from coupon_targets group by 1"))
    assert sorted(str(d) for d in per_day) == [
        str(first + timedelta(days=1)),
        str(second + timedelta(days=1)),
    ]
    assert all(count > 0 for count in per_day.values())
    analyst.close()
    with duckdb.connect(str(snapshot), read_only=True) as fresh:
        assert fresh.execute("select count(distinct as_of_date) from user_features").fetchone()[0] == dates_before + 2
        assert fresh.execute("select count(*) from coupon_targets").fetchone()[0] == sum(per_day.values())
