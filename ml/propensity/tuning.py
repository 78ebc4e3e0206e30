"""`python -m ml tune`: each model family's hyperparameters, chosen by time-ordered cross-validation with a fixed
trial budget; training then uses them (ml.propensity.tuned_params).

- **Folds, in time order.** Only the split's training snapshots are read; its validation and test dates are
  not, so the test figures training reports stay out of sample. Each of the newest TUNING_FOLDS training
  snapshots in turn is a fold's validation date, and the fold trains on the snapshots at least `gap_days`
  before it: by default LABEL_HORIZON_DAYS, so no fold learns from labels (30 days ahead) that overlap what
  it is scored on. A shorter gap (`--gap-days`) tunes a short history, but lets that overlap in, and the
  overlap favours flexible models (on the `make run` shop, forward chaining with a 7-day gap picked deeper,
  less regularised trees whose test AUC fell; docs/models.md). XGBoost stops early on the fold's validation
  rows, as training stops on its validation date.
- **Trials.** The family's current defaults first, then `--trials` - 1 seeded draws without replacement from
  its search space (SEARCH_SPACES). Random search fits a budget of 8-20 trials on one to six parameters as
  well as a model-based sampler would, needs no extra dependency, and the seed reproduces it.
- **Bounded cost.** Each fold trains on at most TUNING_MAX_ROWS of its rows (a seeded sample), so a trial
  costs about the same on any shop; the forest and the network sample that many in training anyway.
- **The choice** is the trial with the best mean fold ROC AUC; a tie keeps the defaults. Per task, one MLflow
  run in `shop_tuning` (every trial's params and fold AUCs, `plots/trials.png`) and the file training reads.
"""

from __future__ import annotations

import itertools
import json
import time
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd

from ml.config import LABEL_HORIZON_DAYS, settings
from ml.errors import ModelError
from ml.propensity.datasets import model_inputs
from ml.propensity.estimators import CHALLENGER_MAX_ROWS, DEFAULT_PARAMS, fit_flavour, flavour_inputs
from ml.propensity.tuned_params import SEARCH_SPACES, feature_hash, tuning_file
from ml.storage import write_text_atomic

EXPERIMENT = "shop_tuning"
TUNING_FOLDS = 3
TUNING_MAX_ROWS = CHALLENGER_MAX_ROWS


def default_params(flavour: str) -> dict[str, Any]:
    """What training fits untuned (for the network, none: it picks among NETWORK_SHAPES on validation)."""
    return dict(DEFAULT_PARAMS[flavour])


def trial_params(flavour: str, budget: int, seed: int) -> list[dict[str, Any]]:
    """The defaults, then budget - 1 distinct seeded draws from the family's search space."""
    space = SEARCH_SPACES[flavour]
    first = default_params(flavour)
    others = [dict(zip(space, values, strict=True)) for values in itertools.product(*space.values())]
    others = [params for params in others if params != first]
    drawn = np.random.default_rng(seed).choice(len(others), size=min(budget - 1, len(others)), replace=False)
    return [first, *(others[i] for i in drawn)]


def time_ordered_folds(train_dates: list[date], gap_days: int = LABEL_HORIZON_DAYS) -> list[tuple[list[date], date]]:
    """(training snapshots, validation snapshot) per fold, oldest first (see the module's docstring)."""
    dates = sorted(train_dates)
    gap = timedelta(days=gap_days)
    folds = [([d for d in dates if d + gap <= validation], validation) for validation in dates[-TUNING_FOLDS:]]
    folds = [(train, validation) for train, validation in folds if train]
    if not folds:
        raise ModelError(
            f"no time-ordered fold: the training snapshots ({', '.join(map(str, dates)) or 'none'}) span less than "
            f"the {gap_days}-day gap between a fold's training and validation dates. Build more history (python -m ml "
            "history), or tune with a shorter --gap-days (its labels then overlap what it is scored on)."
        )
    return folds


def fold_data(
    train: pd.DataFrame, columns: list[str], seed: int, gap_days: int = LABEL_HORIZON_DAYS
) -> list[dict[str, Any]]:
    """Each fold's inputs and labels, from the training snapshots' rows (its training part at most TUNING_MAX_ROWS,
    a seeded sample); folds lacking either class are left out."""
    folds = []
    as_of = pd.to_datetime(train["as_of_date"]).dt.date
    for train_dates, validation in time_ordered_folds(sorted(set(as_of)), gap_days):
        fit = train[as_of.isin(train_dates).to_numpy()]
        if len(fit) > TUNING_MAX_ROWS:
            fit = fit.iloc[np.sort(np.random.default_rng(seed).choice(len(fit), TUNING_MAX_ROWS, replace=False))]
        parts = {"train": fit, "valid": train[(as_of == validation).to_numpy()]}
        if all(part["label"].nunique() == 2 for part in parts.values()):
            folds.append(
                {
                    "validation_date": str(validation),
                    "frames": parts,  # a sequence family's inputs are attached to these (flavour_inputs)
                    "x": {name: model_inputs(part, columns) for name, part in parts.items()},
                    "y": {name: part["label"].to_numpy(dtype=int) for name, part in parts.items()},
                }
            )
    if not folds:
        raise ModelError("no tuning fold has both label values; build more history (python -m ml history)")
    return folds


def tune_family(flavour: str, folds: list[dict], columns: list[str], budget: int, seed: int) -> dict[str, Any]:
    """Every trial's mean fold ROC AUC and the choice (`columns`: the features the folds' inputs hold)."""
    from sklearn.metrics import roc_auc_score

    started = time.perf_counter()
    trials = []
    inputs = [flavour_inputs(flavour, fold["frames"], columns, fold["x"], fold["y"], seed) for fold in folds]
    for params in trial_params(flavour, budget, seed):
        aucs = []
        for x, y in inputs:
            pipeline, _ = fit_flavour(flavour, x, y, seed, params)
            aucs.append(float(roc_auc_score(y["valid"], pipeline.predict_proba(x["valid"])[:, 1])))
        trials.append({"params": params, "fold_roc_auc": aucs, "mean_roc_auc": float(np.mean(aucs))})
    best = max(trials, key=lambda t: t["mean_roc_auc"])  # the first, the defaults, on a tie
    return {
        "params": best["params"],
        "mean_roc_auc": round(best["mean_roc_auc"], 5),
        "default_mean_roc_auc": round(trials[0]["mean_roc_auc"], 5),
        "trials": trials,
        "seconds": round(time.perf_counter() - started, 1),
    }


def tune(as_of: date | None = None, budget: int = 8, gap_days: int = LABEL_HORIZON_DAYS) -> list[dict[str, Any]]:
    """Tune every family SHOP_MODEL_FLAVOURS trains, for both tasks; write each task's file; one line per family."""
    from ml.propensity.datasets import TASKS
    from ml.propensity.train import load_split

    split, columns, frames = load_split(list(TASKS), as_of, parts=("train",))
    seed, lines = settings().seed, []
    for task, parts in frames.items():
        folds = fold_data(parts["train"], columns, seed, gap_days)
        families = {
            flavour: tune_family(flavour, folds, columns, budget, seed) for flavour in settings().model_flavours
        }
        tuning = {
            "task": task,
            "tuned_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "feature_hash": feature_hash(columns),
            "trial_budget": budget,
            "gap_days": gap_days,
            "newest_snapshot": str(max(split.train_dates)),
            "validation_dates": [fold["validation_date"] for fold in folds],
            "families": families,
        }
        _log_run(task, tuning, split)
        write_text_atomic(json.dumps(tuning, indent=2, default=str), tuning_file(task))
        lines += [
            {
                "task": task,
                "flavour": flavour,
                "folds": len(folds),
                "gap_days": gap_days,
                "trials": len(result["trials"]),
                "default_mean_roc_auc": result["default_mean_roc_auc"],
                "tuned_mean_roc_auc": result["mean_roc_auc"],
                "params": result["params"],
                "tuning_seconds": result["seconds"],
            }
            for flavour, result in families.items()
        ]
    return lines


def _log_run(task: str, tuning: dict[str, Any], split) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import mlflow
    from ml.registry.ownership import owner_tags
    from ml.registry.tracking import configure_mlflow, experiment_id

    configure_mlflow()
    with mlflow.start_run(
        experiment_id=experiment_id(EXPERIMENT), run_name=f"tune-{task}-{split.test_date}", tags=owner_tags()
    ):
        mlflow.log_params(
            {
                "task": task,
                "trial_budget": tuning["trial_budget"],
                "gap_days": tuning["gap_days"],
                "validation_dates": ",".join(tuning["validation_dates"]),
                "feature_hash": tuning["feature_hash"],
            }
        )
        for flavour, result in tuning["families"].items():
            mlflow.log_metrics(
                {
                    f"{flavour}_tuned_mean_roc_auc": result["mean_roc_auc"],
                    f"{flavour}_default_mean_roc_auc": result["default_mean_roc_auc"],
                    f"{flavour}_tuning_seconds": result["seconds"],
                }
            )
        mlflow.log_dict(tuning, "tuning.json")
        fig, ax = plt.subplots(figsize=(7, 4))
        for n, result in enumerate(tuning["families"].values()):
            means = [t["mean_roc_auc"] for t in result["trials"]]
            ax.scatter([n] * len(means), means, color="tab:blue", alpha=0.6)
            ax.scatter([n], [means[0]], color="tab:orange", marker="D", label="defaults" if n == 0 else None)
        ax.set_xticks(range(len(tuning["families"])), list(tuning["families"]))
        ax.set(ylabel="mean fold ROC AUC", title=f"{task}: every trial, time-ordered folds")
        ax.legend(loc="lower right")
        mlflow.log_figure(fig, "plots/trials.png")
        plt.close(fig)
