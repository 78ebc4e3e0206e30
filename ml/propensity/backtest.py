"""`python -m ml backtest --as-of DATE`: the models against the classic baselines, on any shop.

Trains every model family (XGBoost, logistic, random forest, feed-forward network, sequence network) with the
training code
(`ml.propensity.train.load_split`, `ml.propensity.estimators.fit_flavour`, with the hyperparameters `ml tune`
chose where it tuned on snapshots no newer than this split's) on
snapshots whose label windows closed before DATE, whatever SHOP_MODEL_FLAVOURS trains, fits the baselines on
the same training rows, and
scores DATE's 30-day purchase labels for every known customer (the purchase model's population). Nothing
is registered: the run is logged to the MLflow experiment `shop_backtests` with a ROC plot of every scorer.
"""

from __future__ import annotations

import time
from datetime import date
from typing import Any

import numpy as np

from ml.config import settings
from ml.propensity.baselines import baseline_scores
from ml.propensity.datasets import TASKS, model_inputs
from ml.propensity.estimators import FLAVOURS

EXPERIMENT = "shop_backtests"
TASK = "purchase_30d"


def backtest(as_of: date | None = None) -> list[dict[str, Any]]:
    """One result per scorer (model families, then baselines) on DATE's labels; logged to MLflow."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    from ml.propensity.estimators import fit_flavour, flavour_inputs
    from ml.propensity.train import load_split
    from ml.propensity.tuned_params import tuned_params

    split, columns, frames = load_split([TASK], as_of)
    parts = frames[TASK]
    x = {part: model_inputs(frame, columns) for part, frame in parts.items()}
    y = {part: frame["label"].to_numpy(dtype=int) for part, frame in parts.items()}
    scores: dict[str, np.ndarray] = {}
    seconds: dict[str, float] = {}
    for flavour in FLAVOURS:
        started = time.perf_counter()
        xf, yf = flavour_inputs(flavour, parts, columns, x, y, settings().seed)
        pipeline, _ = fit_flavour(
            flavour, xf, yf, settings().seed, tuned_params(TASK, flavour, columns, max(split.train_dates))[0]
        )
        seconds[flavour] = round(time.perf_counter() - started, 1)
        scores[flavour] = pipeline.predict_proba(xf["test"])[:, 1]
    scores.update(baseline_scores(parts["train"], parts["test"]))
    results = [
        {
            "scorer": scorer,
            "as_of_date": str(split.test_date),
            "n_users": int(len(y["test"])),
            "positive_rate": round(float(y["test"].mean()), 4),
            "roc_auc": round(float(roc_auc_score(y["test"], values)), 4),
            "pr_auc": round(float(average_precision_score(y["test"], values)), 4),
            **({"fit_seconds": seconds[scorer]} if scorer in seconds else {}),
        }
        for scorer, values in scores.items()
    ]
    _log_run(results, scores, y["test"], split)
    return results


def _log_run(results: list[dict], scores: dict[str, np.ndarray], y_test: np.ndarray, split) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    import mlflow
    from ml.registry.ownership import owner_tags
    from ml.registry.tracking import configure_mlflow, experiment_id

    configure_mlflow()
    with mlflow.start_run(
        experiment_id=experiment_id(EXPERIMENT), run_name=f"backtest-{split.test_date}", tags=owner_tags()
    ):
        mlflow.log_params(
            {
                **split.as_params(),
                "task": TASK,
                "label": TASKS[TASK]["label_definition"],
                "population": TASKS[TASK]["population_definition"],
                "n_users": results[0]["n_users"],
            }
        )
        mlflow.log_metrics({f"{r['scorer']}_{m}": r[m] for r in results for m in ("roc_auc", "pr_auc")})
        mlflow.log_dict({"results": results}, "backtest.json")
        fig, ax = plt.subplots(figsize=(6, 5))
        for r in results:
            fpr, tpr, _ = roc_curve(y_test, scores[r["scorer"]])
            ax.plot(fpr, tpr, label=f"{r['scorer']} (AUC {r['roc_auc']:.3f})")
        ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
        ax.set(xlabel="false positive rate", ylabel="true positive rate", title=f"Backtest, as of {split.test_date}")
        ax.legend(loc="lower right")
        mlflow.log_figure(fig, "plots/roc_by_scorer.png")
        plt.close(fig)
