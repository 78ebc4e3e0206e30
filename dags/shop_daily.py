"""
### shop_daily: the e-commerce behaviour warehouse, one day at a time

For the business day D (the data interval's start, or the `run_date` param):

1. **land_day** lands D's event export from the inbox as the `event_date=D` partition (with
   `source=simulate`, the synthetic shop simulates the day first if the inbox lacks it).
2. **features** (one Airflow task per dbt model, via Cosmos) builds staging, quarantine and
   `user_features` / `training_labels` as of D + 1: everything known by the end of D. The models over
   events are incremental by day: they re-process only from `reprocess_from` (land_day's XCom: D minus
   `SHOP_LATE_EVENT_DAYS`, earlier if the landing changed an older day or a landed day was never built). Then
   **check_features** runs the tests that join two models (the quarantine share above all): a flood of
   malformed rows fails the day here, before training, scoring or publishing. With `SHOP_DBT_TASKS=group`
   each dbt group (features, segments, targeting) is one Cosmos `dbt build` task that runs those tests
   itself, and there are no check tasks: fewer dbt starts, less per-model detail in the UI.
3. **train** retrains the propensity, churn and coupon effect models weekly (and whenever a model has no
   champion or the monitor raised an alert), else it is skipped; only labels matured before the day are used.
4. **score** scores every known user with the `@champion` models (churn: users active in the last 30 days),
   with the top 3 reasons behind each score (`user_score_reasons`).
5. **monitor** writes the champions' realised performance on matured labels and the drift of scores and
   inputs (`model_monitoring`), logs them to MLflow with a plot; it fails nothing on an alert, but an alert
   on realised AUC or score drift makes the next run's **train** retrain.
6. **segments** (dbt) builds `user_segments` for D + 1, with each user's behavioural cluster and category
   recommendations; **forecast** forecasts each segment's orders and revenue for the next 28 days.
7. **target** plans the send list for D + 1: eligibility, the two policy arms, the holdout and the
   budgeted allocation (`ml/targeting/plan.py`); the policy gate first checks which policy leads.
8. **targeting** (dbt) builds `coupon_targets` and the realised `coupon_results`; **check_targeting** tests
   the house rules (consent, contact cap, budget, holdout) before anything is published.
9. **publish** exports the days the run changed and swaps in a fresh read-only analyst snapshot.

Every task that opens the warehouse runs in the single-slot `warehouse` pool; rerunning a day
replaces that day's partitions and rows with the same ones: the first run pins its training decision,
model versions and leading policy (`ml/day_pins.py`), so a rerun or backfill in any order reproduces
the day and later days still build. The `source` param defaults to `SHOP_SOURCE` (`inbox`: a missing
export fails the day). A failed task is logged with its reason and kept in `audit/failed_days/`.
"""

from __future__ import annotations

import gc
import os
import sys
from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import CronDataIntervalTimetable, Param, dag, task
from cosmos import DbtTaskGroup, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
from cosmos.constants import ExecutionMode, InvocationMode, LoadMode, TestBehavior
from cosmos.operators.local import DbtBuildLocalOperator
from shop_assets import ANALYST_SNAPSHOT, SCORES, TARGETING, USER_FEATURES

from ml.config import SOURCES, settings
from ml.pipeline import report_failure
from ml.warehouse.builds import as_of_vars
from ml.warehouse.dbt_runner import DBT_PROFILE, close_dbt_warehouse, dbt_env, dbt_target

WAREHOUSE_POOL = "warehouse"
CFG = settings()
DBT_DIR = CFG.dbt_project_dir
AS_OF = "{{ ti.xcom_pull(task_ids='land_day')['as_of_date'] }}"
REPROCESS_FROM = "{{ ti.xcom_pull(task_ids='land_day')['reprocess_from'] }}"
# Retries only where waiting can help: an export that lands late, a warehouse another writer holds.
# A failed test, a bad file or a model error fails the same way again.
RETRIES = int(os.environ.get("SHOP_TASK_RETRIES", "2"))


def _freeze_heap(context) -> None:
    """Cosmos ends every dbt task with a full garbage collection (to release dbt's adapters). In a process that
    runs many tasks (`airflow dags test`: `make run`, the tests) it scanned every object earlier tasks left
    alive: about 0.6 s a dbt task, a third of a per-model day. What is alive when a task starts is set aside
    for the collector while it runs; what the task makes is still collected."""
    gc.freeze()


def _close_warehouse_after(context, result) -> None:
    """Right after a task's work, before its success is reported: the warehouse its dbt call kept open is
    closed, so the next task (which a scheduler starts as soon as the success is reported) can open it."""
    close_dbt_warehouse()


def _end_task(context) -> None:
    """Whatever way a task ended (success, skip, retry, failure): close the warehouse if its dbt call left it
    open (after a failure nothing closed it yet; a task process that exits closes it anyway), and hand the
    objects set aside back to the collector: garbage among them (an earlier task's cycles) is collected later
    instead of living as long as the process."""
    try:
        close_dbt_warehouse()
    finally:
        gc.unfreeze()


DEFAULT_ARGS = {
    "owner": "data-engineering",
    "retries": 0,
    # The warehouse pool has one slot: a task that hangs (a read that never returns) would stall every day.
    "execution_timeout": timedelta(minutes=CFG.task_timeout_minutes),
    "retry_delay": timedelta(minutes=5),
    "pool": WAREHOUSE_POOL,
    "on_execute_callback": _freeze_heap,
    "post_execute": _close_warehouse_after,
    "on_success_callback": _end_task,
    "on_skipped_callback": _end_task,
    "on_retry_callback": _end_task,
    "on_failure_callback": [_end_task, report_failure],
}


def dbt_group(group_id: str, tag: str, outlets: list) -> DbtTaskGroup | DbtBuildLocalOperator:
    """The models tagged `tag`, each built with its own tests, in the warehouse pool.

    SHOP_DBT_TASKS=model (default): one Airflow task per model (its own status, log and retry).
    SHOP_DBT_TASKS=group: one `dbt build` of the group, which also runs the tests that join its models to
    earlier ones (dbt selects a test once all its parents are built by then), so no check task follows.
    """
    profile = ProfileConfig(
        profile_name=DBT_PROFILE,
        target_name=dbt_target(CFG),  # SHOP_ENGINE: the same tasks on DuckDB or Spark
        profiles_yml_filepath=DBT_DIR / "profiles.yml",
    )
    # The day's dates in the environment (templated), not in --vars: new vars would reparse the project each day.
    day = {"as_of_start": AS_OF, "as_of_end": AS_OF, "reprocess_from": REPROCESS_FROM}
    # Never a secret: the operators' env is a rendered field anyone who can read the run sees.
    # keep_open: each task opens the warehouse once, not once per node, and closes it after its work
    # (_close_warehouse_after, or _end_task after a failure).
    env = {
        k: v
        for k, v in dbt_env(CFG, day, keep_open=True).items()
        if k.startswith(("SHOP_", "DBT_", "DO_NOT")) and k != "SHOP_PSEUDONYM_KEY"
    }
    operator_args = {
        "pool": WAREHOUSE_POOL,
        "install_deps": False,
        # Each task is one dbt call: skip writing the JSON artifacts (a 2 MB manifest, twice a call) and
        # listing every relation up front; lineage (read from those artifacts) gives way to the outlets below.
        "dbt_cmd_global_flags": ["--no-write-json", "--no-populate-cache"],
        "emit_datasets": False,
        "vars": as_of_vars(None, cfg=CFG),
    }
    dbt = str(Path(sys.executable).parent / "dbt")
    if CFG.dbt_tasks == "group":
        return DbtBuildLocalOperator(
            task_id=group_id,
            project_dir=str(DBT_DIR),
            profile_config=profile,
            select=f"tag:{tag}",
            env=env,
            invocation_mode=InvocationMode.DBT_RUNNER,
            dbt_executable_path=dbt,
            outlets=outlets,
            retries=min(RETRIES, 1),
            **operator_args,
        )
    return DbtTaskGroup(
        group_id=group_id,
        project_config=ProjectConfig(
            dbt_project_path=DBT_DIR,
            manifest_path=DBT_DIR / "target" / "manifest.json",
            env_vars=env,
            install_dbt_deps=False,
        ),
        profile_config=profile,
        execution_config=ExecutionConfig(
            execution_mode=ExecutionMode.LOCAL, invocation_mode=InvocationMode.DBT_RUNNER, dbt_executable_path=dbt
        ),
        render_config=RenderConfig(
            select=[f"tag:{tag}"], load_method=LoadMode.AUTOMATIC, test_behavior=TestBehavior.BUILD
        ),
        operator_args=operator_args,
        default_args={"outlets": outlets, "retries": min(RETRIES, 1)},
    )


@dag(
    dag_id="shop_daily",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    doc_md=__doc__,
    tags=["shop", "warehouse", "ml", "daily"],
    params={
        "run_date": Param(
            None,
            type=["null", "string"],
            format="date",
            description="Business day to (re)build; default: the data interval's start.",
        ),
        "source": Param(
            CFG.source,
            enum=list(SOURCES),
            description="inbox: require the shop's exported file (default; SHOP_SOURCE sets it); "
            "simulate: synthesise a missing day (the demo shop).",
        ),
        "force_train": Param(False, type="boolean", description="Retrain even if not the weekly training day."),
    },
)
def shop_daily():
    @task(retries=RETRIES)
    def land_day(**context) -> dict:
        from ml.pipeline import business_date, land, source_of

        return land(business_date(context), source=source_of(context))

    @task
    def train(**context) -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        from ml.pipeline import as_of_from, train_if_due

        result = train_if_due(as_of_from(context), force=context["params"]["force_train"])
        if result is None:
            raise AirflowSkipException(
                "not a training day and both models have a champion, or this day's first run already decided"
            )
        return result

    @task(trigger_rule="none_failed", outlets=[SCORES])
    def score(**context) -> dict:
        from ml.pipeline import as_of_from
        from ml.propensity.score import score_day

        return score_day(as_of_from(context))

    @task
    def monitor(**context) -> dict:
        from ml.pipeline import as_of_from
        from ml.pipeline import monitor as monitor_day

        return monitor_day(as_of_from(context))

    @task
    def forecast(**context) -> dict:
        from ml.forecasts.segments import forecast_day
        from ml.pipeline import as_of_from

        return forecast_day(as_of_from(context))

    @task
    def target(**context) -> dict:
        from ml.pipeline import as_of_from
        from ml.targeting.plan import target_day

        return target_day(as_of_from(context))

    @task(retries=0)
    def check(tag: str, **context) -> str:
        """The tests that join two models (quarantine share, consent, contact cap): fail the day here."""
        from ml.pipeline import as_of_from, reprocess_from
        from ml.warehouse.builds import check_data

        # The dbt groups' vars and day (reprocess_from included): the parse the groups left is reused.
        return check_data(tag, as_of_from(context), reprocess_from(context), in_process=True)[-2000:]

    @task(outlets=[ANALYST_SNAPSHOT])
    def publish(**context) -> str:
        from ml.pipeline import publish_day, reprocess_from

        # The day is built end to end: the landing mark its window covered is done with.
        return publish_day(reprocess_from(context), context["ti"].xcom_pull(task_ids="land_day").get("reprocess_mark"))

    landed = land_day()
    features = dbt_group("features", "features", [USER_FEATURES])
    # ---- ML: train (weekly / no champion) -> score -> targeting marts ----
    trained = train()
    scored = score()
    monitored = monitor()
    segments = dbt_group("segments", "segments", [])
    forecasted = forecast()
    planned = target()
    targeting = dbt_group("targeting", "targeting", [TARGETING])
    if CFG.dbt_tasks == "group":  # each group's build ran the tests that join its models
        features_checked, targeting_checked = features, targeting
    else:
        features_checked = features >> check.override(task_id="check_features")("features")
        targeting_checked = targeting >> check.override(task_id="check_targeting")("targeting")
    landed >> features
    features_checked >> trained >> scored >> monitored >> segments >> forecasted >> planned >> targeting
    targeting_checked >> publish()


shop_daily()
