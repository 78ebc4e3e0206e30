"""Real DAG runs (dag.test) on a small shop: two days, a retrain, a rerun of the first that reproduces it
and a third day that still builds, with an analyst reading."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from tests.checksums import query, table_checksums
from tests.readme import readme_block

DAGS = Path(__file__).resolve().parents[2] / "dags"
MARTS = [
    "user_features",
    "training_labels",
    "events_quarantine",
    "user_segments",
    "coupon_targets",
    "stg_ml__scores",
    "user_recommendations",
    "segment_daily_activity",
]
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


def _promote_another_version() -> dict[str, str]:
    """What a later training day does to the registry: another version of every model becomes the champion.

    The first day's training registered both flavours of each model; the one that lost becomes champion here
    (a retrain would do the same to the aliases, at the cost of training again).
    """
    from ml.registry.aliases import MODEL_NAMES, champion_version, promote
    from ml.registry.tracking import client

    champions = {}
    for name in MODEL_NAMES.values():
        versions = [str(v.version) for v in client().search_model_versions(f"name='{name}'")]
        other = max((v for v in versions if v != champion_version(name)), key=int)
        promote(name, other, "test: a later retrain")
        champions[name] = other
    return champions


def test_two_days_then_a_rerun_of_the_first_are_identical_and_an_open_analyst_session_survives(
    airflow_db, built_shop, shop_copy, monkeypatch
):
    """The first day runs with a task per dbt model (the default), the later ones with one `dbt build` per group
    (SHOP_DBT_TASKS=group, a third of the dbt starts): the rerun must reproduce the first day either way."""
    from airflow.dag_processing.dagbag import DagBag

    from ml.warehouse.publish import publish_snapshot

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
    monkeypatch.setenv("SHOP_DBT_TASKS", "group")
    dag = DagBag(dag_folder=str(DAGS)).get_dag("shop_daily")
    assert "features.user_features_model_build" not in dag.task_ids and "features" in dag.task_ids
    assert _run(dag, second) == "success"
    after_two_days = table_checksums(shop.warehouse, MARTS)
    scores_after = {p.name: p.read_bytes() for p in (shop.data / "scores").rglob("*.parquet")}

    champions = _promote_another_version()
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
    # Customers forgotten now do not come back when the next day lands and rebuilds the days it re-processes.
    from ml.forget import forget
    from tests.privacy_scan import user_id_hits

    targeted = query(shop.warehouse, "select user_id from coupon_targets group by 1 order by 1 limit 3")
    ids = [int(user_id) for (user_id,) in targeted]
    assert len(ids) == 3 and user_id_hits(shop.data, ids)
    forget(ids)
    assert user_id_hits(shop.data, ids) == []
    # The day after the rerun still builds, with the new champions, and without the forgotten users.
    assert _run(dag, third) == "success"
    third_versions = query(
        shop.warehouse,
        "select distinct purchase_model_version from stg_ml__scores where as_of_date = ?",
        [third + timedelta(days=1)],
    )
    assert user_id_hits(shop.data, ids) == []
    from ml.registry.aliases import champion_version

    assert third_versions == [(champion_version("purchase_propensity"),)] != first_versions
    # The README's query for analysts, run as printed from the folder that holds data/.
    (shop.root / ".venv").symlink_to(Path(sys.executable).parents[1])
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", readme_block("Everyday commands")],
        cwd=shop.root,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    segments = query(snapshot, "select distinct lifecycle_segment from user_segments")
    assert segments and all(name in done.stdout for (name,) in segments), done.stdout
