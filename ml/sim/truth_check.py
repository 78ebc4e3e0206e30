"""The propensity models against the simulator's truth: `python -m ml evaluate --against-truth`."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
from sklearn.metrics import (
    average_precision_score,
    roc_auc_score,
)

from ml.config import settings
from ml.errors import ModelError


def evaluate_against_truth(as_of: date | None = None) -> list[dict[str, object]]:
    """One dict per registered model: the champion's AUC next to the simulator's oracle AUC."""
    from ml.propensity.datasets import TASKS, load_labelled, model_inputs, truth_file
    from ml.propensity.sequences import with_sequences
    from ml.registry.aliases import MODEL_NAMES, load_champion
    from ml.warehouse.read import connect_read_only, matured_dates

    truth_dir = settings().truth_dir / "probabilities"
    if not truth_dir.exists():
        raise ModelError(
            f"no ground truth at {truth_dir}: --against-truth only works on a shop made by `python -m ml simulate`; "
            "on your own data there is no truth to compare with"
        )
    with connect_read_only() as con:
        available = matured_dates(con)
        if not available:
            raise ModelError("training_labels is empty: no as-of date has a closed label window yet")
        as_of = as_of or available[-1]
        if as_of not in available:
            raise ModelError(f"--as-of {as_of} has no matured labels (matured: {available[0]}..{available[-1]})")
        frames = {task: load_labelled(con, task, [as_of]) for task in TASKS}
    path = truth_file(as_of)
    if not path.exists():
        raise ModelError(f"{path}: no truth for {as_of}; the simulated shop does not cover that date")
    truth = pd.read_parquet(path).set_index("user_id")
    lines = []
    for task, model_name in MODEL_NAMES.items():
        frame = frames[task]
        model, version = load_champion(model_name)
        columns = [c.name for c in model.metadata.get_input_schema().inputs]
        inputs = model_inputs(with_sequences(frame, columns), columns)
        proba = np.asarray(model.predict(inputs))[:, 1]
        oracle = truth.loc[frame["user_id"], TASKS[task]["oracle_column"]].to_numpy()
        y = frame["label"].to_numpy(dtype=int)
        # The population the models scored before every known customer was: active in the last 180 days.
        recent = frame["days_since_last_activity"].le(180).fillna(False).to_numpy(dtype=bool)
        lines.append(
            {
                "model": model_name,
                "version": version,
                "task": task,
                "as_of_date": str(as_of),
                "n_users": int(len(frame)),
                "positive_rate": round(float(y.mean()), 4),
                "auc": round(float(roc_auc_score(y, proba)), 4),
                "oracle_auc": round(float(roc_auc_score(y, oracle)), 4),
                "pr_auc": round(float(average_precision_score(y, proba)), 4),
                "oracle_pr_auc": round(float(average_precision_score(y, oracle)), 4),
                "auc_active_180d": round(float(roc_auc_score(y[recent], proba[recent])), 4),
                "oracle_auc_active_180d": round(float(roc_auc_score(y[recent], oracle[recent])), 4),
            }
        )
    return lines
