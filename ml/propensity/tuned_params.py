"""The hyperparameters `ml tune` chose, as training reads them: `data/tuning/<task>.json`.

One file per task: each family's chosen params, the feature hash they were tuned on, the folds, the trial budget
and the mean fold ROC AUC of the choice and of the defaults. Training uses a family's params only when the file
was tuned on the features it trains on (the same hash); otherwise it warns and trains on the defaults, since params
chosen for other inputs prove nothing about these.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import date
from pathlib import Path
from typing import Any

from ml.config import settings
from ml.errors import ModelError

log = logging.getLogger(__name__)
# Each family's search space: what `ml tune` draws from, and all a tuning file may set.
SEARCH_SPACES: dict[str, dict[str, list]] = {
    "xgboost": {
        "learning_rate": [0.03, 0.05, 0.1],
        "max_depth": [3, 4, 5, 6],
        "min_child_weight": [5, 20, 50],
        "subsample": [0.7, 0.8, 1.0],
        "colsample_bytree": [0.6, 0.8, 1.0],
        "reg_lambda": [1.0, 5.0, 20.0],
    },
    "logistic": {"C": [0.03, 0.1, 0.3, 0.5, 1.0, 3.0, 10.0]},
    "random_forest": {
        "n_estimators": [100, 200],
        "min_samples_leaf": [5, 10, 20, 50],
        "max_features": ["sqrt", 0.2, 0.4],
    },
    "mlp": {"hidden_layer_sizes": ["32", "64+32", "32+16"], "alpha": [0.001, 0.01, 0.03, 0.1]},
    "gru": {"hidden_units": [8, 16, 32], "learning_rate": [0.001, 0.003, 0.01], "alpha": [0.00001, 0.0001, 0.001]},
}


def feature_hash(columns: list[str]) -> str:
    """A short fingerprint of a model's input columns, in order (logged with every run and tuning)."""
    return hashlib.sha256(",".join(columns).encode()).hexdigest()[:12]


def tuning_file(task: str) -> Path:
    return settings().data_dir / "tuning" / f"{task}.json"


def read_tuning(task: str) -> dict[str, Any] | None:
    """The task's tuning file, None where `ml tune` has written none; a clear error for a damaged one."""
    path = tuning_file(task)
    if not path.exists():
        return None
    try:
        tuning = json.loads(path.read_text())
        families = tuning["families"]
        for flavour, family in families.items():
            unknown = {k: v for k, v in family["params"].items() if v not in SEARCH_SPACES[flavour].get(k, [])}
            if unknown:
                raise ValueError(f"{flavour} params outside its search space: {unknown}")
        str(tuning["feature_hash"])
        date.fromisoformat(tuning["newest_snapshot"])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:  # KeyError: also a family it cannot tune
        raise ModelError(
            f"{path}: not a tuning file `ml tune` wrote ({exc}); nothing was trained. "
            "Rerun python -m ml tune, or delete the file to train on the defaults."
        ) from None
    return tuning


def tuned_params(task: str, flavour: str, columns: list[str], newest_snapshot: date) -> tuple[dict | None, str]:
    """(the params `ml tune` chose for this family, or None for the defaults; where they came from, for the run).
    `newest_snapshot`: the newest training snapshot of the split being fitted; params tuned on later snapshots
    (a backtest of an earlier date) would carry what it must not know, so it gets the defaults."""
    tuning = read_tuning(task)
    if tuning is None or flavour not in tuning["families"]:
        return None, "defaults (not tuned)"
    if tuning["feature_hash"] != feature_hash(columns):
        log.warning("%s was tuned on other features: %s trains on its defaults", tuning_file(task), flavour)
        return None, "defaults (tuned on other features)"
    if date.fromisoformat(tuning["newest_snapshot"]) > newest_snapshot:
        log.warning(
            "%s was tuned on snapshots after %s: %s fits its defaults", tuning_file(task), newest_snapshot, flavour
        )
        return None, "defaults (tuned on later snapshots)"
    return tuning["families"][flavour]["params"], f"ml tune on {tuning.get('tuned_at', '?')}"
