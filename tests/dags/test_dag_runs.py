"""Real DAG runs (dag.test) on a small shop: two days, a retrain, a rerun of the first that reproduces it
and a third day that still builds, with an analyst reading; a flood of malformed rows stops a day."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from tests.checksums import query, table_checksums

DAGS = Path(__file__).resolve().parents[2] / "dags"
MARTS = ["user_features", "training_labels", "events_quarantine", "user_segments", "coupon_targets", "stg_ml__scores"]
pytestmark = pytest.mark.slow


def _run(dag, day, **conf) -> str:
    run = dag.test(
        logical_date=datetime(day.year, day.month, day.day, tzinfo=UTC), run_conf={"run_date": str(day), **conf}
    )
    return str(run.state)


def _day_rows(warehouse, as_of) -> dict[str, list]:
    """The day's user_segments and coupon_targets rows, every column, in a fixed order."""
    return {
        table: query(warehouse, f"select * from {table} where as_of_date = ? order by all", [as_of])
        for table in ("user_segments", "coupon_targets")
    }


def _retrain_and_promote() -> dict[str, str]:
    """What a later training day does: new versions of every model become the champions."""
    from ml.registry import MODEL_NAMES, champion_version, client, promote
    from ml.train import train_all

    train_all()
    champions = {}
    for name in MODEL_NAMES.values():
        newest = max(int(v.version) for v in client().search_model_versions(f"name='{name}'"))
        if champion_version(name) != str(newest):
            promote(name, str(newest), "test: a later retrain")
        champions[name] = str(newest)
    return champions


def test_two_days_then_a_rerun_of_the_first_are_identical_and_an_open_analyst_session_survives(
    airflow_db, built_shop, shop_copy
):
    from airflow.dag_processing.dagbag import DagBag

    from ml.publish import publish_snapshot

    shop = shop_copy(built_shop)
    snapshot = publish_snapshot()
    analyst = duckdb.connect(str(snapshot), read_only=True)
    dates_before = analyst.execute("select count(distinct as_of_date) from user_features").fetchone()[0]

    dag = DagBag(dag_folder=str(DAGS)).get_dag("shop_daily")
    first, second, third = shop.remaining_days[:3]
    # The first day trains (like a Monday): its training decision and model versions are pinned.
    assert _run(dag, first, force_train=True) == "success"
    first_rows = _day_rows(shop.warehouse, first + timedelta(days=1))
    assert all(first_rows.values())
    # The analyst's session stays open and keeps reading the snapshot it opened.
    assert analyst.execute("select count(distinct as_of_date) from user_features").fetchone()[0] == dates_before
    assert _run(dag, second) == "success"
    after_two_days = table_checksums(shop.warehouse, MARTS)
    scores_after = {p.name: p.read_bytes() for p in (shop.data / "scores").rglob("*.parquet")}

    champions = _retrain_and_promote()
    first_versions = query(shop.warehouse, "select distinct purchase_model_version from stg_ml__scores")
    assert [(champions["purchase_propensity"],)] != first_versions  # the rerun must not pick the new champion

    assert _run(dag, first) == "success"
    assert _day_rows(shop.warehouse, first + timedelta(days=1)) == first_rows
    assert table_checksums(shop.warehouse, MARTS) == after_two_days
    assert {p.name: p.read_bytes() for p in (shop.data / "scores").rglob("*.parquet")} == scores_after

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
    # The day after the rerun still builds, with the new champions.
    assert _run(dag, third) == "success"
    third_versions = query(
        shop.warehouse,
        "select distinct purchase_model_version from stg_ml__scores where as_of_date = ?",
        [third + timedelta(days=1)],
    )
    from ml.registry import champion_version

    assert third_versions == [(champion_version("purchase_propensity"),)] != first_versions


@pytest.mark.parametrize("dbt_tasks", ["model", "group"])
def test_a_day_with_30_percent_malformed_rows_fails_before_publishing(
    airflow_db, built_shop, shop_copy, monkeypatch, dbt_tasks
):
    """source inbox, a third of the export broken: the quarantine check fails the run, nothing is published.

    With a task per dbt model the check task fails; with one `dbt build` per group (SHOP_DBT_TASKS=group) the
    features build runs the same test and fails.
    """
    import pandas as pd
    from airflow.dag_processing.dagbag import DagBag

    from ml.publish import publish_snapshot
    from tests.dbt.test_features import _bad_day

    monkeypatch.setenv("SHOP_DBT_TASKS", dbt_tasks)
    shop = shop_copy(built_shop)
    dag = DagBag(dag_folder=str(DAGS)).get_dag("shop_daily")
    first, second = shop.remaining_days[:2]
    assert _run(dag, first) == "success"
    snapshot = publish_snapshot()
    published = table_checksums(snapshot, MARTS)

    export = shop.data / "inbox" / "events" / f"events_{second}.parquet"
    clean_rows = len(pd.read_parquet(export))
    flooded = _bad_day(shop, second, n_bad_per_reason=max(1, round(clean_rows * 0.3 / 0.7 / 5)))
    flooded.to_parquet(export)
    assert 0.28 < 1 - clean_rows / len(flooded) < 0.32

    assert _run(dag, second, source="inbox") == "failed"
    assert table_checksums(snapshot, MARTS) == published  # the analysts still see the previous day
    assert not (shop.data / "targets" / f"as_of_date={second + timedelta(days=1)}").exists()
    failures = list((shop.data / "audit" / "failed_days").glob(f"{second}__*.json"))
    assert failures and "assert_quarantine_share_below_limit" in failures[0].read_text()
    assert (f"{second}__check_features" if dbt_tasks == "model" else f"{second}__features") in failures[0].name
    assert len(pd.read_parquet(shop.data / "landing" / "events" / f"event_date={second}")) == len(flooded)
