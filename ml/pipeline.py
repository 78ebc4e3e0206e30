"""The daily sequence: a business day resolved from the run, and the steps for that day in their order.

The run for business day D lands D's events and builds everything as of D + 1 (events before D + 1).
`DAILY_STEPS` is the one order of the day's steps: the DAG's tasks (a dbt group's tasks are `<group>.<model>`),
`run_day` (the closed loop and the bench, without Airflow) and `tests/dags/test_dag_integrity.py` follow it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from ml.errors import UserFacingError

TRAIN_WEEKDAY = 0  # Monday
DAILY_STEPS = (
    "land_day",
    "features",
    "check_features",
    "train",
    "score",
    "monitor",
    "segments",
    "forecast",
    "target",
    "targeting",
    "check_targeting",
    "publish",
)


def as_of_for(day: date) -> date:
    """The as-of date a business day's run builds: the next day, so features see all of `day` and nothing later."""
    return day + timedelta(days=1)


def business_date(context: dict[str, Any]) -> date:
    """The `run_date` param if given, else the start of the run's data interval."""
    override = (context.get("params") or {}).get("run_date")
    if override:
        try:
            return date.fromisoformat(str(override))
        except ValueError:
            raise UserFacingError(f"run_date param must be a date (YYYY-MM-DD), got {override!r}") from None
    start = context.get("data_interval_start")
    if start is None:
        raise UserFacingError("this run has no data interval (asset-triggered?): pass the run_date param")
    return start.date()


def source_of(context: dict[str, Any]) -> str:
    """A DAG run's `source` param, refused where it would turn a real shop's run into the demo: anyone who can
    trigger a run could otherwise have synthetic users simulated into the shop's inbox and merged over its own."""
    from ml.config import settings

    source = context["params"]["source"]
    if source == "simulate" and settings().source != "simulate":
        raise UserFacingError(
            "source=simulate is refused: this deployment lands the shop's own exports (SHOP_SOURCE=inbox); "
            "the demo shop is simulated only where SHOP_SOURCE=simulate"
        )
    return source


def land(day: date, source: str = "inbox") -> dict[str, Any]:
    """Land the business day's export; with source=simulate, the synthetic shop first writes a missing day."""
    from ml.config import settings
    from ml.ingest.landing import inbox_file, land_day
    from ml.ingest.reprocess_mark import read_mark
    from ml.warehouse.builds import reprocess_start

    if source == "simulate" and inbox_file(settings().inbox_dir / "events", "events", day) is None:
        from ml.sim.run import extend_shop

        extend_shop(day)
    summary = land_day(day)
    summary["business_date"] = str(day)
    summary["as_of_date"] = str(as_of_for(day))
    changed = summary["first_changed_day"]
    # The event days the feature build re-processes, passed to dbt (var reprocess_from) through XCom.
    summary["reprocess_from"] = str(reprocess_start(as_of_for(day), changed and date.fromisoformat(changed)))
    # The durable mark this run's window covers: publish clears it once the day has been built (if no landing
    # has moved it since).
    mark = read_mark()
    summary["reprocess_mark"] = mark and mark["id"]
    return summary


def report_failure(context: dict[str, Any]) -> None:
    """Airflow's failure callback: log the failed day with its reason and keep it in audit/failed_days/."""
    import json
    import logging

    from ml.config import settings
    from ml.storage import write_text_atomic

    ti = context.get("task_instance") or context.get("ti")
    run = context.get("dag_run")
    try:
        day = str(business_date(context))
    except UserFacingError:
        day = None
    exception = context.get("exception")
    report = {
        "dag_id": getattr(run, "dag_id", None),
        "run_id": getattr(run, "run_id", None),
        "business_date": day,
        "task_id": getattr(ti, "task_id", None),
        "try_number": getattr(ti, "try_number", None),
        "reason": f"{type(exception).__name__}: {exception}" if exception else "unknown",
    }
    logging.getLogger(__name__).error("shop_daily failed for %s in %s: %s", day, report["task_id"], report["reason"])
    name = f"{day or 'unknown'}__{report['task_id']}__{report['run_id']}".replace("/", "_").replace(":", "-")
    write_text_atomic(json.dumps(report, indent=2, default=str), settings().audit_dir / "failed_days" / f"{name}.json")
    # A task killed outright (out of memory, SIGKILL) leaves its MLflow run RUNNING: close it as FAILED.
    try:
        from ml.registry.ownership import fail_orphaned_runs

        fail_orphaned_runs()
    except Exception:  # the report above matters more than this tidy-up
        logging.getLogger(__name__).exception("could not check MLflow for runs left open")


def as_of_from(context: dict[str, Any]) -> date:
    return as_of_for(business_date(context))


def reprocess_from(context: dict[str, Any]) -> date:
    """The first event day this DAG run re-processes (land_day's XCom): the dbt var and publish's start."""
    return date.fromisoformat(context["ti"].xcom_pull(task_ids="land_day")["reprocess_from"])


def train_if_due(as_of: date, force: bool = False) -> dict[str, Any] | None:
    """Train on the weekly training day (a Monday, unless a run trained in the 6 days before), when forced,
    when a model has no champion, or when the monitor raised an alert on a champion (ml.monitoring); else None.
    The reason is in the result, the day's pin and every promotion audit row of the training.

    Only labels and campaigns whose windows closed before `as_of` are used, so a backfill of an old
    day trains on what that day could know. The decision is pinned (ml.day_pins): a rerun of the day
    does not train again (unless forced), and scores with the versions its first run used.
    """
    from ml.config import settings
    from ml.day_pins import pin, pins
    from ml.monitoring.monitor import retrain_reason
    from ml.propensity.train import train_all
    from ml.registry.aliases import MODEL_NAMES, champion_version

    if "training" in pins(as_of) and not force:
        return None
    missing = [name for name in MODEL_NAMES.values() if champion_version(name) is None]
    alert = retrain_reason(as_of) if settings().retrain_on_alert else None
    weekly = as_of.weekday() == TRAIN_WEEKDAY and not trained_in_week_before(as_of)
    if not (force or missing or alert or weekly):
        pin(as_of, training={"trained": False})
        return None
    because = (
        "forced"
        if force
        else f"no champion for {', '.join(missing)}"
        if missing
        else f"monitoring alert: {alert}"
        if alert
        else "the weekly training day"
    )
    result = {
        "trained_because": because,
        "results": train_all(as_of=newest_label_date_before(as_of), because=because),
        "coupon_uplift": train_uplift_if_possible(as_of, because),
    }
    pin(as_of, training={"trained": True, "because": because})  # score_day pins the versions that score the day
    return result


def trained_in_week_before(as_of: date) -> date | None:
    """The as-of date in the 6 days before `as_of` whose run trained (its pin), if any: models that young are not
    retrained on the Monday (a shop's first day on a Sunday would otherwise train two days running)."""
    from ml.day_pins import pins

    for back in range(1, 7):
        day = as_of - timedelta(days=back)
        if pins(day).get("training", {}).get("trained"):
            return day
    return None


def newest_label_date_before(as_of: date) -> date:
    """The newest as-of date of training_labels whose 30-day window closed by `as_of` (what a run then knew)."""
    from ml.config import LABEL_HORIZON_DAYS
    from ml.warehouse.read import connect_read_only, matured_dates

    with connect_read_only() as con:
        known = [d for d in matured_dates(con) if d + timedelta(days=LABEL_HORIZON_DAYS) <= as_of]
    if not known:
        raise UserFacingError(f"no training labels matured before {as_of}: build earlier history first")
    return known[-1]


def train_uplift_if_possible(as_of: date | None = None, because: str = "asked") -> dict[str, Any]:
    """Train the coupon effect models; a shop without randomised campaigns gets the reason instead.

    A failure here never stops the day: the current champion (or the propensity rules) keeps targeting,
    and the result says why training did not happen.
    """
    import logging

    from ml.errors import ModelError
    from ml.uplift.train import train_uplift

    try:
        return train_uplift(before=as_of, because=because)
    except ModelError as exc:
        return {"model": "coupon_uplift", "decision": "skipped", "reason": str(exc)}
    except Exception as exc:  # the behaviour models are trained; a broken uplift fit must not block scoring
        logging.getLogger(__name__).exception("coupon_uplift training failed")
        return {"model": "coupon_uplift", "decision": "failed", "reason": f"{type(exc).__name__}: {exc}"}


@dataclass
class DayRun:
    """One business day run outside Airflow: what a step hands the later ones (the DAG passes it by XCom)."""

    day: date
    source: str = "inbox"
    force_train: bool = False
    landed: dict[str, Any] = field(default_factory=dict)

    @property
    def as_of(self) -> date:
        return as_of_for(self.day)

    @property
    def reprocess_from(self) -> date:
        return date.fromisoformat(self.landed["reprocess_from"])


def publish_day(since: date | None, mark_id: str | None) -> str:
    """The day's last step: publish the days its run can have changed, then clear the landing mark it covered.
    On Spark no snapshot: analysts read the tables (metastore or Parquet), which no build locks (docs/spark.md)."""
    from ml.config import settings
    from ml.ingest.reprocess_mark import clear_mark
    from ml.warehouse.publish import publish_snapshot
    from ml.warehouse.spark_session import spark_tables_dir

    published = spark_tables_dir() if settings().engine == "spark" else publish_snapshot(since=since)
    clear_mark(mark_id)  # a no-op if a landing has moved the mark since this run read it
    return str(published)


def monitor(as_of: date) -> dict[str, Any]:
    """The day's monitoring rows (ml.monitoring.monitor), logged to MLflow with their plot."""
    from ml.monitoring.monitor import monitor_day
    from ml.monitoring.report import log_monitoring

    summary = monitor_day(as_of)
    summary["mlflow_runs"] = log_monitoring(as_of)
    return summary


def _step_functions() -> dict[str, Callable[[DayRun], Any]]:
    from ml.forecasts.segments import forecast_day
    from ml.propensity.score import score_day
    from ml.targeting.build import build_segments, build_targeting
    from ml.targeting.plan import target_day
    from ml.warehouse.builds import build_features, check_data

    def land_step(run: DayRun) -> dict[str, Any]:
        run.landed = land(run.day, source=run.source)
        return run.landed

    return {
        "land_day": land_step,
        "features": lambda run: build_features(run.as_of, run.as_of, reprocess_from=run.reprocess_from),
        "check_features": lambda run: check_data("features", run.as_of, run.reprocess_from),
        "train": lambda run: train_if_due(run.as_of, force=run.force_train),
        "score": lambda run: score_day(run.as_of),
        "monitor": lambda run: monitor(run.as_of),
        "segments": lambda run: build_segments(run.as_of, run.reprocess_from),
        "forecast": lambda run: forecast_day(run.as_of),
        "target": lambda run: target_day(run.as_of),
        "targeting": lambda run: build_targeting(run.as_of, plan=False, reprocess_from=run.reprocess_from),
        "check_targeting": lambda run: check_data("targeting", run.as_of, run.reprocess_from),
        "publish": lambda run: publish_day(run.reprocess_from, run.landed.get("reprocess_mark")),
    }


def run_day(
    day: date,
    source: str = "inbox",
    skip: Iterable[str] = (),
    until: str = DAILY_STEPS[-1],
    force_train: bool = False,
    timed: Callable[[str], AbstractContextManager] | None = None,
    landed: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run business day `day`'s steps in `DAILY_STEPS` order without Airflow, up to `until`; each step's result.

    `skip`: steps a caller leaves out (the closed loop publishes once at its end; a `dbt build` of a whole
    group already ran the tests its check step would run again). `timed(name)`: a context around each step.
    `landed`: the result of a land_day step that already ran (skipped here), for the steps after it.
    """
    skip = set(skip)
    if unknown := (skip | {until}) - set(DAILY_STEPS):
        raise ValueError(f"unknown daily step(s) {sorted(unknown)}; the steps: {', '.join(DAILY_STEPS)}")
    functions = _step_functions()
    run = DayRun(day, source=source, force_train=force_train, landed=dict(landed or {}))
    results: dict[str, Any] = {}
    for name in DAILY_STEPS[: DAILY_STEPS.index(until) + 1]:
        if name in skip:
            continue
        with timed(name) if timed else nullcontext():
            results[name] = functions[name](run)
    return results
