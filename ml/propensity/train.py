"""Train both tasks in every model family, track them in MLflow, register and gate them.

For each task (purchase_30d, churn_30d): each flavour of SHOP_MODEL_FLAVOURS (XGBoost, logistic, random forest,
feed-forward network by default) is fitted on the same out-of-time split,
logged as MLflow runs (parameters, data window, feature list and hash, code version, validation and
test metrics, plots, the model with signature and input example) and registered as versions of
`purchase_propensity` / `churn_risk`. The new version with the best validation AUC is promoted to `@champion` only if it
beats the current champion re-scored on the same test window and clears the AUC floor; otherwise it
becomes `@challenger`.
"""

from __future__ import annotations

import logging
import subprocess
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from ml.config import PROJECT_ROOT, settings
from ml.errors import ModelError
from ml.privacy.examples import synthetic_examples
from ml.propensity.baselines import baseline_scores, roc_auc
from ml.propensity.datasets import (
    TASKS,
    Split,
    choose_split,
    feature_columns,
    load_labelled,
    model_inputs,
    training_user_share,
)
from ml.propensity.drift_reference import REFERENCE_ARTIFACT, reference_bins
from ml.propensity.estimators import feature_importance, fit_flavour, flavour_inputs
from ml.propensity.metrics import best_f1_threshold, classification_metrics, quality_figures
from ml.propensity.reasons import contribution_summary_figure, contributions
from ml.propensity.sequences import is_sequence_column, with_sequences
from ml.propensity.tuned_params import feature_hash, read_tuning, tuned_params
from ml.registry.aliases import MODEL_NAMES, champion_version, load_champion, model_requirements, reconcile_ui_changes
from ml.registry.gate import decide
from ml.registry.ownership import fail_orphaned_runs, owner_tags
from ml.registry.tracking import configure_mlflow, experiment_id
from ml.registry.vetting import PROPENSITY_TRUSTED_TYPES, TRAINING_EXPERIMENTS
from ml.warehouse.read import connect_read_only, matured_dates

log = logging.getLogger(__name__)
EXPERIMENT = TRAINING_EXPERIMENTS["purchase_propensity"]
# Models are saved with skops (no arbitrary pickle); these are the types our pipelines add to sklearn's own,
# and all a loaded version may ask to trust (ml.registry.vetting).
SKOPS_TRUSTED_TYPES = PROPENSITY_TRUSTED_TYPES


def code_version() -> str:
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "ml", "dbt_project"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
        return f"{sha}{'-dirty' if dirty else ''}"
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def train_all(
    tasks: list[str] | None = None, as_of: date | None = None, because: str = "asked"
) -> list[dict[str, Any]]:
    """Train, log, register and gate every task; return one summary per task. `because`: why, for the audit."""
    configure_mlflow()
    reconcile_ui_changes()
    fail_orphaned_runs()
    for task in tasks or list(TASKS):
        read_tuning(task)  # a damaged tuning file stops training before any model is registered
    split, columns, frames = load_split(tasks or list(TASKS), as_of)
    return [train_task(task, parts, split, columns, because) for task, parts in frames.items()]


def load_split(
    tasks: list[str], as_of: date | None, parts: tuple[str, ...] = ("train", "valid", "test")
) -> tuple[Split, list[str], dict[str, dict[str, pd.DataFrame]]]:
    """The out-of-time split testing on `as_of` (default: newest matured) and each task's frames for it (`parts`:
    which of them; tuning reads the training snapshots only)."""
    with connect_read_only() as con:
        split = choose_split(matured_dates(con), as_of)
        columns = feature_columns(con)
        max_users = settings().train_max_users
        loaders = {
            "train": lambda task: load_labelled(
                con, task, split.train_dates, training_user_share(con, task, split.train_dates, max_users)
            ),
            "valid": lambda task: load_labelled(con, task, [split.validation_date]),
            "test": lambda task: load_labelled(con, task, [split.test_date]),
        }
        frames = {task: {part: loaders[part](task) for part in parts} for task in tasks}
    for task, parts in frames.items():
        for part, frame in parts.items():
            if frame.empty or frame["label"].nunique() < 2:
                raise ModelError(
                    f"{task}: the {part} window has {len(frame)} rows and {frame['label'].nunique()} label "
                    "value(s); it needs both classes. Build more history (python -m ml history)."
                )
    return split, columns, frames


def train_task(
    task: str, parts: dict[str, pd.DataFrame], split: Split, columns: list[str], because: str = "asked"
) -> dict[str, Any]:
    import mlflow

    name = MODEL_NAMES[task]
    seed = settings().seed
    x = {part: model_inputs(frame, columns) for part, frame in parts.items()}
    y = {part: frame["label"].to_numpy(dtype=int) for part, frame in parts.items()}
    inputs_hash = feature_hash(columns)
    experiment = experiment_id(EXPERIMENT)
    # The classic baselines on the same test rows, logged beside each model's metrics for comparison.
    baselines = {
        f"baseline_{scorer}_test_roc_auc": roc_auc(y["test"], scores)
        for scorer, scores in baseline_scores(x["train"], x["test"]).items()
    }
    candidates = []
    for flavour in settings().model_flavours:
        with mlflow.start_run(
            experiment_id=experiment, run_name=f"{name}-{flavour}-{split.test_date}", tags=owner_tags()
        ) as run:
            tuned, tuned_by = tuned_params(task, flavour, columns, max(split.train_dates))
            # The family's own inputs (a sequence network's carry each user's daily activity); the same rows.
            xf, yf = flavour_inputs(flavour, parts, columns, x, y, seed)
            pipeline, params = fit_flavour(flavour, xf, yf, seed, tuned)
            proba = {part: pipeline.predict_proba(xf[part])[:, 1] for part in ("valid", "test")}
            threshold = best_f1_threshold(y["valid"], proba["valid"])
            metrics = {
                **classification_metrics(y["valid"], proba["valid"], threshold, "valid"),
                **classification_metrics(y["test"], proba["test"], threshold, "test"),
                "threshold": threshold,
            }
            mlflow.set_tags(
                {
                    "task": task,
                    "flavour": flavour,
                    "model_name": name,
                    "code_version": code_version(),
                    "feature_hash": inputs_hash,
                    "trained_because": because[:5000],
                }
            )
            mlflow.log_params(
                {
                    **{f"model_{k}": v for k, v in params.items()},
                    **split.as_params(),
                    "task": task,
                    "label": TASKS[task]["label_definition"],
                    "population": TASKS[task]["population_definition"],
                    "lookback_days": settings().scoring_lookback_days,
                    "flavour": flavour,
                    "seed": seed,
                    "n_features": len(columns),
                    "feature_hash": inputs_hash,
                    "hyperparameters": tuned_by,
                    "train_rows": len(yf["train"]),
                    "train_max_users": settings().train_max_users,
                    "train_positive_rate": round(float(y["train"].mean()), 4),
                }
            )
            mlflow.log_metrics({**metrics, **baselines})
            mlflow.log_dict({"features": list(xf["test"].columns), "feature_hash": inputs_hash}, "features.json")
            importance = feature_importance(pipeline)
            for filename, figure in quality_figures(
                y["test"], proba["test"], importance, f"{name} ({flavour}), test {split.test_date}"
            ).items():
                mlflow.log_figure(figure, f"plots/{filename}")
            # The global view of the per-user reasons, and the bins the monitor measures drift against.
            grouped, _, _ = contributions(pipeline, xf["test"].head(5000))
            mlflow.log_figure(contribution_summary_figure(grouped, f"{name} ({flavour})"), "plots/contributions.png")
            mlflow.log_dict(reference_bins(x["test"], proba["test"]), REFERENCE_ARTIFACT)
            _close_figures()
            example = xf["test"].head(200)
            signature = mlflow.models.infer_signature(example, pipeline.predict_proba(example))
            info = mlflow.sklearn.log_model(
                pipeline,
                name="model",
                signature=signature,
                input_example=synthetic_examples(xf["test"]),
                registered_model_name=name,
                pyfunc_predict_fn="predict_proba",
                pip_requirements=model_requirements(),
                skops_trusted_types=SKOPS_TRUSTED_TYPES,
            )
            version = str(info.registered_model_version)
            _tag_version(name, version, flavour, metrics, split, run.info.run_id)
            candidates.append(
                {
                    "version": version,
                    "flavour": flavour,
                    "test_roc_auc": metrics["test_roc_auc"],
                    "valid_roc_auc": metrics["valid_roc_auc"],
                    "run_id": run.info.run_id,
                }
            )
    return gate(name, candidates, parts["test"], y["test"], split.test_date, because)


def _tag_version(name, version, flavour, metrics, split: Split, run_id) -> None:
    from ml.registry.tracking import client

    mlflow_client = client()
    tags = {
        "flavour": flavour,
        "test_date": str(split.test_date),
        "train_end_date": str(split.train_dates[-1]),
        "run_id": run_id,
        **{k: f"{v:.4f}" for k, v in metrics.items() if k.startswith("test_") and not k.endswith("_rows")},
    }
    for key, value in tags.items():
        mlflow_client.set_model_version_tag(name, version, key, value)


def champion_auc_on(name: str, test: pd.DataFrame, y_test: np.ndarray) -> tuple[str | None, float | None]:
    """Re-score the current champion on this test window (`test`: its user_features rows); (None, None) when there
    is none."""
    from sklearn.metrics import roc_auc_score

    if champion_version(name) is None:
        return None, None
    try:
        model, version = load_champion(name)
    except ModelError as refused:  # a champion the pipeline will not load (ml.registry.vetting) cannot defend
        log.warning("%s", refused)
        return champion_version(name), float("nan")
    expected = [c.name for c in model.metadata.get_input_schema().inputs]
    missing = [c for c in expected if c not in test.columns and not is_sequence_column(c)]
    if missing:
        log.warning(
            "%s@champion v%s expects features that no longer exist (%s): it cannot defend",
            name,
            version,
            ", ".join(missing),
        )
        return version, float("nan")
    inputs = model_inputs(with_sequences(test, expected), expected)
    return version, float(roc_auc_score(y_test, np.asarray(model.predict(inputs))[:, 1]))


def gate(
    name: str, candidates: list[dict], test: pd.DataFrame, y_test: np.ndarray, test_date: date, because: str
) -> dict:
    """The new version with the best validation AUC through the promotion gate (ml.registry.gate), judged on test
    AUC: picking among the families on the test date too would favour whichever is luckiest there."""
    best = max(candidates, key=lambda c: c["valid_roc_auc"])
    champion, champion_auc = champion_auc_on(name, test, y_test)
    metrics = {
        "test_roc_auc": round(best["test_roc_auc"], 4),
        "test_date": str(test_date),
        "champion_version": champion,
        "champion_test_roc_auc": None if champion_auc is None else round(champion_auc, 4),
        "trained_because": because,
    }
    decision = decide(
        name, best["version"], best["test_roc_auc"], champion, champion_auc, best["flavour"], str(test_date), metrics
    )
    return {
        "model": name,
        "decision": decision,
        "candidate_version": best["version"],
        "flavour": best["flavour"],
        "test_roc_auc": round(best["test_roc_auc"], 4),
        "champion_before": champion,
        "champion_before_auc": metrics["champion_test_roc_auc"],
        "champion_after": champion_version(name),
        "versions": {c["flavour"]: c["version"] for c in candidates},
    }


def _close_figures() -> None:
    import matplotlib.pyplot as plt

    plt.close("all")
