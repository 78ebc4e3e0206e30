"""The DAG file: imports cleanly without side effects, and declares the schedule, pool and graph we rely on."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ml.config import PROJECT_ROOT

DAGS = Path(__file__).resolve().parents[2] / "dags"


@pytest.fixture
def parse_root(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "never_written"
    monkeypatch.setenv("SHOP_DATA_DIR", str(root / "data"))
    monkeypatch.setenv("SHOP_MLFLOW_DIR", str(root / "mlflow"))
    monkeypatch.delenv("SHOP_TASK_RETRIES", raising=False)  # judge the production defaults
    return root


@pytest.fixture
def dag_bag(parse_root, airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def test_dag_files_import_without_errors_or_side_effects(dag_bag, parse_root):
    assert dag_bag.import_errors == {}
    assert set(dag_bag.dag_ids) == {"shop_daily"}
    assert not parse_root.exists()  # parsing wrote nothing: no data, no MLflow store


def test_shop_daily_is_a_daily_partitioned_backfillable_dag(dag_bag):
    dag = dag_bag.get_dag("shop_daily")
    assert dag.max_active_runs == 1 and dag.catchup is False
    assert type(dag.timetable).__name__ == "CronDataIntervalTimetable"
    assert {"shop", "warehouse", "ml", "daily"} <= set(dag.tags)
    assert dag.doc_md and "business day" in dag.doc_md
    assert set(dag.params) >= {"run_date", "source", "force_train"}


def test_only_tasks_a_retry_can_help_retry_and_all_run_in_the_single_slot_warehouse_pool(dag_bag):
    """A late export (land_day) or a warehouse another writer holds (dbt) can clear; a failed check cannot."""
    for task in dag_bag.get_dag("shop_daily").tasks:
        assert task.pool == "warehouse", task.task_id
        assert task.on_failure_callback, task.task_id  # a failed day is reported with its reason
        can_clear = task.task_id == "land_day" or task.task_id.endswith(("_model_build", "_seed_build"))
        assert (task.retries >= 1) == can_clear, task.task_id


def test_every_task_has_an_execution_timeout(dag_bag):
    """One hung task would hold the single warehouse slot, and with it every later day."""
    from datetime import timedelta

    tasks = dag_bag.get_dag("shop_daily").tasks
    assert tasks and all(task.execution_timeout == timedelta(minutes=180) for task in tasks)


def test_the_source_param_defaults_to_the_inbox(dag_bag):
    assert dag_bag.get_dag("shop_daily").params["source"] == "inbox"


def test_task_graph_runs_land_features_train_score_segments_target_targeting_publish_in_order(dag_bag):
    dag = dag_bag.get_dag("shop_daily")
    ids = set(dag.task_ids)
    dbt_models = {i.split(".")[1].removesuffix("_model_build") for i in ids if "." in i}
    assert {"user_features", "training_labels", "events_quarantine", "user_segments", "coupon_targets"} <= dbt_models

    def upstream(task_id: str) -> set[str]:
        return _upstream(dag, task_id)

    assert dag.get_task("land_day").upstream_task_ids == set()
    assert "features.user_features_model_build" in upstream("train")
    assert "land_day" in upstream("features.user_features_model_build")
    assert dag.get_task("train").upstream_task_ids == {"check_features"}  # nothing trains on a failed check
    assert "features.user_features_model_build" in upstream("check_features")
    assert dag.get_task("publish").upstream_task_ids == {"check_targeting"}
    assert "targeting.coupon_results_model_build" in upstream("check_targeting")
    assert dag.get_task("score").upstream_task_ids == {"train"}
    assert "score" in upstream("segments.user_segments_model_build")
    assert {"score", "monitor"} <= upstream("segments.model_monitoring_model_build")
    # The send list is planned from the segments, and the targeting marts read it.
    assert "segments.user_segments_model_build" in upstream("target")
    assert "target" in upstream("targeting.coupon_targets_model_build")
    assert "targeting.coupon_targets_model_build" in upstream("targeting.coupon_results_model_build")
    assert {
        "targeting.coupon_targets_model_build",
        "targeting.coupon_results_model_build",
        "segments.user_segments_model_build",
        "target",
        "monitor",
        "score",
        "train",
        "land_day",
    } <= upstream("publish")
    assert dag.get_task("publish").downstream_task_ids == set()


def test_with_dbt_tasks_per_group_each_group_is_one_dbt_build_with_its_tests(parse_root, airflow_db, monkeypatch):
    """SHOP_DBT_TASKS=group: one `dbt build` per group; its selection runs the joining tests, so no check tasks."""
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("SHOP_DBT_TASKS", "group")
    dag = DagBag(dag_folder=str(DAGS)).get_dag("shop_daily")
    assert set(dag.task_ids) == {
        "land_day", "features", "train", "score", "monitor", "segments", "forecast", "target", "targeting", "publish"
    }  # fmt: skip
    for group in ("features", "segments", "targeting"):
        task = dag.get_task(group)
        assert type(task).__name__ == "DbtBuildLocalOperator" and task.select == f"tag:{group}"
        assert task.pool == "warehouse" and task.retries >= 1 and task.on_failure_callback
        assert "--no-write-json" in task.dbt_cmd_global_flags
        # The day's dates travel in the environment (templated), so the vars, and dbt's parse, stay the same daily.
        day = json.loads(task.env["SHOP_DBT_DAY_VARS"])
        assert set(day) == {"as_of_start", "as_of_end", "reprocess_from"} and "xcom_pull" in day["as_of_start"]
        assert {"holdout_share", "late_event_days"} <= set(task.vars) and not set(task.vars) & set(day)
    assert dag.get_task("features").upstream_task_ids == {"land_day"}
    assert dag.get_task("train").upstream_task_ids == {"features"}  # nothing trains on a failed test
    assert dag.get_task("forecast").upstream_task_ids == {"segments"}
    assert dag.get_task("target").upstream_task_ids == {"forecast"}
    assert dag.get_task("publish").upstream_task_ids == {"targeting"}
    monkeypatch.setenv("SHOP_DBT_TASKS", "batch")
    from ml.config import settings
    from ml.errors import ConfigError

    with pytest.raises(ConfigError, match="SHOP_DBT_TASKS must be one of model, group, got 'batch'"):
        settings()


def test_the_check_tasks_run_the_tests_that_join_models_and_only_those(parse_root):
    """A model task runs its own tests; a test reading two models runs in the check after both are built."""
    from ml.warehouse.builds import cross_model_tests

    features, targeting = cross_model_tests("features"), cross_model_tests("targeting")
    assert {"assert_features_do_not_see_the_future", "assert_quarantine_share_below_limit"} <= set(features)
    assert any(name.startswith("relationships_user_features_user_id") for name in features)
    # Their other parent, coupon_targets, is built after the features check.
    assert not any("coupon_targets" in name for name in features)
    assert {"assert_coupon_targets_have_consent", "assert_coupon_targets_respect_contact_cap"} <= set(targeting)
    assert "assert_features_do_not_see_the_future" not in targeting  # checked once, with the features
    assert not any(
        name.startswith(("unique_combination", "not_null", "accepted_values")) for name in features + targeting
    )


def test_the_check_lists_come_from_a_fresh_parse_when_the_project_has_no_manifest(tmp_path, monkeypatch):
    """A project never parsed (a fresh copy): the check parses it first and finds the same tests."""
    from ml.warehouse.builds import cross_model_tests

    expected = cross_model_tests("features")
    project = tmp_path / "dbt_project"
    shutil.copytree(PROJECT_ROOT / "dbt_project", project, ignore=shutil.ignore_patterns("target", "logs"))
    monkeypatch.setenv("SHOP_DBT_PROJECT_DIR", str(project))
    monkeypatch.setenv("SHOP_DATA_DIR", str(tmp_path / "data"))
    assert cross_model_tests("features") == expected
    assert (project / "target" / "manifest.json").exists()


def test_the_dag_runs_the_daily_steps_in_their_one_order(dag_bag):
    """ml.pipeline.DAILY_STEPS is the order the closed loop and the bench follow: the DAG must follow it too.

    Every task belongs to one step (a dbt group's tasks to the group's), and every task of a step runs after
    every task of the step before it.
    """
    from ml.pipeline import DAILY_STEPS

    dag = dag_bag.get_dag("shop_daily")
    by_step = {name: {t for t in dag.task_ids if t.split(".")[0] == name} for name in DAILY_STEPS}
    assert all(by_step.values()), [name for name, tasks in by_step.items() if not tasks]
    assert set().union(*by_step.values()) == set(dag.task_ids)

    for earlier, later in zip(DAILY_STEPS, DAILY_STEPS[1:], strict=False):
        for task in by_step[later]:
            # The earlier step's last tasks, and so every task of it, run before each task of the later one.
            assert _leaves(dag, by_step[earlier]) <= _upstream(dag, task), (earlier, task)


def _upstream(dag, task_id: str) -> set[str]:
    """Every task `task_id` waits for, directly or through others (Airflow's own walk of the graph)."""
    return dag.get_task(task_id).get_flat_relative_ids(upstream=True)


def _leaves(dag, tasks: set[str]) -> set[str]:
    """The tasks of a step that no other task of the step waits for (its last ones)."""
    return {t for t in tasks if not (dag.get_task(t).downstream_task_ids & tasks)}
