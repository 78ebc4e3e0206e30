"""The monitoring rows in MLflow: one monitoring run per model version, its metrics by scoring date, and a plot.

Experiment `shop_model_monitoring`; the run of `purchase_propensity` v3 is named `monitor purchase_propensity v3`
and is resumed every day, so its metric history is the version's life: `realised_roc_auc` and the other
realised figures at the step of their scoring date (days since 1970-01-01), `score_psi` and the largest
input's `max_feature_psi` likewise. `plots/monitoring.png` shows realised ROC AUC against the version's test
figure and alert line, and the score PSI against its bands, over scoring dates.
"""

from __future__ import annotations

from datetime import date

import pandas as pd

from ml.monitoring.checks import PSI_ALERT, PSI_WARN
from ml.monitoring.monitor import all_rows
from ml.registry.ownership import owner_tags
from ml.registry.tracking import configure_mlflow, experiment_id

EXPERIMENT = "shop_model_monitoring"
EPOCH = date(1970, 1, 1)


def monitoring_run_id(name: str, version: str) -> str | None:
    import mlflow

    runs = mlflow.search_runs(
        experiment_ids=[experiment_id(EXPERIMENT)],
        filter_string=f"tags.model_name = '{name}' and tags.model_version = '{version}'",
        output_format="list",
    )
    return runs[0].info.run_id if runs else None


def figure(rows: pd.DataFrame, title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (auc_ax, psi_ax) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    auc = rows[(rows["metric"] == "roc_auc") & rows["value"].notna()].sort_values("scoring_date")
    days = pd.to_datetime(auc["scoring_date"])
    auc_ax.plot(days, auc["value"], marker="o", label="realised ROC AUC")
    if auc["reference_value"].notna().any():
        auc_ax.axhline(auc["reference_value"].dropna().iloc[-1], color="grey", linestyle="--", label="test AUC")
        auc_ax.axhline(auc["alert_threshold"].dropna().iloc[-1], color="red", linestyle=":", label="alert")
    auc_ax.set(ylabel="ROC AUC", title=title)
    auc_ax.legend(loc="lower left")
    psi = rows[rows["metric"] == "score_psi"].sort_values("scoring_date")
    psi_ax.plot(pd.to_datetime(psi["scoring_date"]), psi["value"], marker="o", label="score PSI")
    psi_ax.axhline(PSI_WARN, color="orange", linestyle=":", label="moderate (0.1)")
    psi_ax.axhline(PSI_ALERT, color="red", linestyle=":", label="major (0.25)")
    psi_ax.set(xlabel="scoring date", ylabel="PSI")
    psi_ax.legend(loc="upper left")
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def log_monitoring(as_of: date) -> dict[str, str]:
    """Log the rows the monitor wrote on `as_of` to each version's monitoring run; the run ids by model."""
    import matplotlib.pyplot as plt

    import mlflow

    configure_mlflow()
    rows = all_rows()
    if rows.empty:
        return {}
    run_ids = {}
    today = rows[pd.to_datetime(rows["monitored_on"]).dt.date == as_of]
    for (name, version), new in today.groupby(["model_name", "model_version"]):
        run_id = monitoring_run_id(name, version)
        with mlflow.start_run(
            run_id=run_id,
            experiment_id=None if run_id else experiment_id(EXPERIMENT),
            run_name=None if run_id else f"monitor {name} v{version}",
            tags=None if run_id else {"model_name": name, "model_version": version, **owner_tags()},
        ) as run:
            mlflow.set_tags(owner_tags())  # this process owns the run now (ml.registry.ownership)
            for scoring_date, day in new.groupby("scoring_date"):
                step = (date.fromisoformat(scoring_date) - EPOCH).days
                model_level = day[day["feature"].isna() & day["value"].notna()]
                metrics = {
                    (r.metric if r.metric == "score_psi" else f"realised_{r.metric}"): r.value
                    for r in model_level.itertuples()
                }
                features = day[day["metric"] == "feature_psi"]["value"].dropna()
                if len(features):
                    metrics["max_feature_psi"] = float(features.max())
                if metrics:
                    mlflow.log_metrics(metrics, step=step)
            history = rows[(rows["model_name"] == name) & (rows["model_version"] == version)]
            mlflow.log_figure(figure(history, f"{name} v{version}"), "plots/monitoring.png")
            plt.close("all")
            run_ids[name] = run.info.run_id
    return run_ids
