"""The same DAG on Spark: SHOP_ENGINE=spark renders the same tasks in the same order, each dbt task with the
profile's `spark` target (Cosmos), and the Python steps that follow run on Spark (tests/spark/test_parity.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.spark

DAGS = Path(__file__).resolve().parents[2] / "dags"


def test_the_daily_dag_on_spark_has_the_same_tasks_and_order_with_the_spark_profile(
    tmp_path, monkeypatch, airflow_db
) -> None:
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("SHOP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SHOP_MLFLOW_DIR", str(tmp_path / "mlflow"))
    graphs, targets = {}, {}
    for engine in ("duckdb", "spark"):
        monkeypatch.setenv("SHOP_ENGINE", engine)
        bag = DagBag(dag_folder=str(DAGS))
        assert bag.import_errors == {}
        dag = bag.get_dag("shop_daily")
        graphs[engine] = {task.task_id: sorted(task.upstream_task_ids) for task in dag.tasks}
        targets[engine] = {task.profile_config.target_name for task in dag.tasks if hasattr(task, "profile_config")}
        env = {task.env.get("DBT_TARGET") for task in dag.tasks if getattr(task, "env", None)}
        assert env == targets[engine]  # what dbt reads (DBT_TARGET) and what Cosmos renders agree
    assert graphs["spark"] == graphs["duckdb"]
    assert len([t for t in graphs["spark"] if t.endswith("_model_build")]) > 20  # one task per model
    assert targets == {"duckdb": {"local"}, "spark": {"spark"}}
