"""What the DAG's tasks call: a business day resolved from the run, and the steps for that day.

The run for business day D lands D's events and builds everything as of D + 1 (events before D + 1).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from ml.errors import UserFacingError

TRAIN_WEEKDAY = 0  # Monday


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


def land(day: date, source: str = "inbox") -> dict[str, Any]:
    """Land the business day's export; with source=simulate, the synthetic shop first writes a missing day."""
    from ml.config import settings
    from ml.landing import inbox_file, land_day
    from ml.reprocess_mark import read_mark
    from ml.warehouse import reprocess_start

    if source == "simulate" and inbox_file(settings().inbox_dir / "events", "events", day) is None:
        from ml.simulate import extend_shop

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
        from ml.registry import fail_orphaned_runs

        fail_orphaned_runs()
    except Exception:  # the report above matters more than this tidy-up
        logging.getLogger(__name__).exception("could not check MLflow for runs left open")


def as_of_from(context: dict[str, Any]) -> date:
    return as_of_for(business_date(context))


def reprocess_from(context: dict[str, Any]) -> date:
    """The first event day this DAG run re-processes (land_day's XCom): the dbt var and publish's start."""
    return date.fromisoformat(context["ti"].xcom_pull(task_ids="land_day")["reprocess_from"])


def train_if_due(as_of: date, force: bool = False) -> dict[str, Any] | None:
    """Train on the weekly training day, when forced, or when a model has no champion; else None.

    Only labels and campaigns whose windows closed before `as_of` are used, so a backfill of an old
    day trains on what that day could know. The decision is pinned (ml.day_pins): a rerun of the day
    does not train again (unless forced), and scores with the versions its first run used.
    """
    from ml.day_pins import pin, pins
    from ml.registry import MODEL_NAMES, champion_version
    from ml.train import train_all

    if "training" in pins(as_of) and not force:
        return None
    missing = [name for name in MODEL_NAMES.values() if champion_version(name) is None]
    if not (force or missing or as_of.weekday() == TRAIN_WEEKDAY):
        pin(as_of, training={"trained": False})
        return None
    result = {
        "results": train_all(as_of=newest_label_date_before(as_of)),
        "coupon_uplift": train_uplift_if_possible(as_of),
    }
    pin(as_of, training={"trained": True})  # the versions that score the day are pinned by score_day
    return result


def newest_label_date_before(as_of: date) -> date:
    """The newest as-of date of training_labels whose 30-day window closed by `as_of` (what a run then knew)."""
    from ml.data import LABEL_HORIZON_DAYS, connect_read_only, matured_dates

    with connect_read_only() as con:
        known = [d for d in matured_dates(con) if d + timedelta(days=LABEL_HORIZON_DAYS) <= as_of]
    if not known:
        raise UserFacingError(f"no training labels matured before {as_of}: build earlier history first")
    return known[-1]


def train_uplift_if_possible(as_of: date | None = None) -> dict[str, Any]:
    """Train the coupon effect models; a shop without randomised campaigns gets the reason instead.

    A failure here never stops the day: the current champion (or the propensity rules) keeps targeting,
    and the result says why training did not happen.
    """
    import logging

    from ml.errors import ModelError
    from ml.uplift import train_uplift

    try:
        return train_uplift(before=as_of)
    except ModelError as exc:
        return {"model": "coupon_uplift", "decision": "skipped", "reason": str(exc)}
    except Exception as exc:  # the behaviour models are trained; a broken uplift fit must not block scoring
        logging.getLogger(__name__).exception("coupon_uplift training failed")
        return {"model": "coupon_uplift", "decision": "failed", "reason": f"{type(exc).__name__}: {exc}"}
