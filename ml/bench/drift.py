"""`make bench-drift`: how soon the monitor sees an injected drift, and what retraining on its alert buys.

A simulated shop (SHOP_BENCH_DRIFT_USERS, default 6,000 users) gets the `bargain_hunters` shift (ml.sim.shop)
from day SHIFT_DAY. Its history is built up to a week before the shift and the models are trained once; then
two copies run the daily steps (land, features, train when due, score, monitor) from there to 30 days after
the shift: `alert_retraining` retrains on a monitoring alert and on Mondays, `weekly_only` on Mondays only
(SHOP_RETRAIN_ON_ALERT=false). Both shops then go on 30 more days, landed and built but not scored, so the
labels of every scored day mature. Reported per arm (data/bench/drift/results.json): the first day each
model's monitor alerted and on what, the days it trained and why, and the mean ROC AUC of its daily scores
against the labels over the 30 days from the shift. Figures depend on the seed and the machine.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from ml.config import PROJECT_ROOT
from ml.progress import progress

SHIFT_DAY = 120
BEFORE, AFTER, LABELS = 7, 30, 31
ARMS = {"alert_retraining": "true", "weekly_only": "false"}
DAILY_SKIP = ("check_features", "segments", "target", "targeting", "check_targeting", "publish")


def point_at(root: Path) -> None:
    os.environ["SHOP_DATA_DIR"] = str(root / "data")
    os.environ["SHOP_MLFLOW_DIR"] = str(root / "mlflow")
    from ml.registry.tracking import configure_mlflow

    configure_mlflow()


def prepare(root: Path, users: int, start: date) -> None:
    """The shop simulated and built up to a week before the shift, both models trained once."""
    from ml.propensity.train import train_all
    from ml.sim.run import simulate
    from ml.sim.shop import ShopSpec
    from ml.warehouse.history import build_history

    shift_from = start + timedelta(days=SHIFT_DAY)
    spec = ShopSpec(
        users=users, days=SHIFT_DAY + AFTER + LABELS, start=start, shift="bargain_hunters", shift_from=shift_from
    )
    point_at(root)
    simulate(spec, through=shift_from - timedelta(days=BEFORE + 1))
    build_history()
    train_all(because="the drift bench's first training")


def run_arm(root: Path, retrain_on_alert: str, first: date, last: date, labels_until: date, shift_from: date) -> dict:
    from ml.pipeline import run_day

    os.environ["SHOP_RETRAIN_ON_ALERT"] = retrain_on_alert
    point_at(root)
    trained = {}
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    for day in progress(days, f"daily steps, retrain on alert={retrain_on_alert}"):
        ran = run_day(day, source="simulate", skip=DAILY_SKIP)
        if ran["train"]:
            trained[str(day)] = ran["train"]["trained_because"]
    # Each day's build adds the labels of the as-of date whose 30-day window has just closed.
    for day in progress([last + timedelta(days=i) for i in range(1, (labels_until - last).days + 1)], "labels"):
        run_day(day, source="simulate", until="features")
    return {"trained": trained, **measured(root, shift_from)}


def measured(root: Path, since: date) -> dict:
    """First alert per model, and each model's ROC AUC on the labels of every scored day from the shift on."""
    import duckdb
    from sklearn.metrics import roc_auc_score

    from ml.monitoring.monitor import alert_text, all_rows

    rows = all_rows()
    alerts = rows[rows["status"] == "alert"].sort_values("monitored_on")
    first_alert = {
        name: {"on": str(group["monitored_on"].iloc[0]), "what": alert_text(group.iloc[0])}
        for name, group in alerts.groupby("model_name")
    }
    scores = pd.concat(
        pd.read_parquet(p).assign(as_of_date=date.fromisoformat(p.parent.name.split("=")[1]))
        for p in (root / "data" / "scores").glob("as_of_date=*/part-0.parquet")
    )
    with duckdb.connect(str(root / "data" / "warehouse.duckdb"), read_only=True) as con:
        labels = con.execute("select user_id, as_of_date, purchase_30d, churn_30d from training_labels").df()
    labels["as_of_date"] = pd.to_datetime(labels["as_of_date"]).dt.date
    joined = scores.merge(labels, on=["user_id", "as_of_date"])
    auc = {}
    columns = {"purchase_propensity": ("p_purchase_30d", "purchase_30d"), "churn_risk": ("p_churn_30d", "churn_30d")}
    for model, (score, label) in columns.items():
        daily = [
            roc_auc_score(day[label], day[score])
            for as_of, day in joined.dropna(subset=[score, label]).groupby("as_of_date")
            if as_of >= since and day[label].nunique() == 2
        ]
        auc[model] = {"mean_auc": round(float(np.mean(daily)), 4) if daily else None, "days": len(daily)}
    return {"first_alert": first_alert, "auc_after_shift": auc}


def main() -> None:
    from ml.warehouse.dbt_runner import dbt_in_this_process

    users = int(os.environ.get("SHOP_BENCH_DRIFT_USERS", "6000"))
    start = date(2026, 1, 1)
    shift_from = start + timedelta(days=SHIFT_DAY)
    bench = Path(os.environ.get("SHOP_BENCH_DIR", PROJECT_ROOT / "data" / "bench")).resolve() / "drift"
    shutil.rmtree(bench, ignore_errors=True)
    results = {"users": users, "shift": "bargain_hunters", "shift_from": str(shift_from), "arms": {}}
    with dbt_in_this_process():
        prepare(bench / "base", users, start)
        for arm, setting in ARMS.items():
            shutil.copytree(bench / "base", bench / arm)
            results["arms"][arm] = run_arm(
                bench / arm,
                setting,
                shift_from - timedelta(days=BEFORE),
                shift_from + timedelta(days=AFTER - 1),
                shift_from + timedelta(days=AFTER - 1 + LABELS),
                shift_from,
            )
            print(json.dumps({arm: results["arms"][arm]}), flush=True)
    (bench / "results.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
