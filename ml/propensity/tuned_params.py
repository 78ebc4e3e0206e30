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
from pathlib import Path
from typing import Any

from ml.config import settings
from ml.errors import ModelError

log = logging.getLogger(__name__)


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
        if not isinstance(families, dict) or not all(isinstance(f.get("params"), dict) for f in families.values()):
            raise TypeError("every family needs a params object")
        str(tuning["feature_hash"])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ModelError(
            f"{path}: not a tuning file `ml tune` wrote ({exc}); nothing was trained. "
            "Rerun python -m ml tune, or delete the file to train on the defaults."
        ) from None
    return tuning


def tuned_params(task: str, flavour: str, columns: list[str]) -> tuple[dict | None, str]:
    """(the params `ml tune` chose for this family, or None for the defaults; where they came from, for the run)."""
    tuning = read_tuning(task)
    if tuning is None or flavour not in tuning["families"]:
        return None, "defaults (not tuned)"
    if tuning["feature_hash"] != feature_hash(columns):
        log.warning("%s was tuned on other features: %s trains on its defaults", tuning_file(task), flavour)
        return None, "defaults (tuned on other features)"
    return tuning["families"][flavour]["params"], f"ml tune on {tuning.get('tuned_at', '?')}"
