"""A real DAG run (dag.test) of a day whose export is a third malformed: it stops before publishing."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.checksums import query, table_checksums
from tests.dags.test_dag_runs import DAGS, MARTS, _run

pytestmark = pytest.mark.slow


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

    from ml.warehouse.publish import publish_snapshot
    from tests.dbt.test_features import _bad_day

    monkeypatch.setenv("SHOP_DBT_TASKS", dbt_tasks)
    shop = shop_copy(built_shop)
    dag = DagBag(dag_folder=str(DAGS)).get_dag("shop_daily")
    day = shop.remaining_days[0]
    snapshot = publish_snapshot()  # what analysts read after the history build
    tables = {row[0] for row in query(snapshot, "select table_name from information_schema.tables")}
    published = table_checksums(snapshot, [t for t in MARTS if t in tables])
    assert {"user_features", "training_labels", "events_quarantine"} <= set(published)

    export = shop.data / "inbox" / "events" / f"events_{day}.parquet"
    clean_rows = len(pd.read_parquet(export))
    flooded = _bad_day(shop, day, n_bad_per_reason=max(1, round(clean_rows * 0.3 / 0.7 / 5)))
    flooded.to_parquet(export)
    assert 0.28 < 1 - clean_rows / len(flooded) < 0.32

    assert _run(dag, day, source="inbox") == "failed"
    assert table_checksums(snapshot, list(published)) == published  # the analysts still see the previous day
    assert not (shop.data / "targets" / f"as_of_date={day + timedelta(days=1)}").exists()
    failures = list((shop.data / "audit" / "failed_days").glob(f"{day}__*.json"))
    assert failures and "assert_quarantine_share_below_limit" in failures[0].read_text()
    assert (f"{day}__check_features" if dbt_tasks == "model" else f"{day}__features") in failures[0].name
    assert len(pd.read_parquet(shop.data / "landing" / "events" / f"event_date={day}")) == len(flooded)
