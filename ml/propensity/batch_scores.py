"""Scoring a batch of users with loaded models: the part both engines run (ml.propensity.score in one process,
ml.propensity.spark_scoring in Spark's executors), so a user's score does not depend on where it ran."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ml.propensity.datasets import in_population, model_inputs
from ml.propensity.reasons import contributions, explained_inputs, top_reasons
from ml.registry.aliases import MODEL_NAMES

OUTPUT_COLUMNS = {
    "purchase_30d": ("p_purchase_30d", "purchase_model_version"),
    "churn_30d": ("p_churn_30d", "churn_model_version"),
}


def score_rows(
    population: pd.DataFrame, loaded: dict[str, tuple[Any, str, list[str]]], reasons: str | None
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """(scores, top reasons) of a batch of users: each task's probability for the users in its population.

    `reasons`: how the reasons are computed (SHOP_SCORE_REASONS, read by the caller: on Spark the executors'
    environment is not the driver's), or None for none.
    """
    out = pd.DataFrame({"user_id": population["user_id"].astype("int64").to_numpy()})
    explained = []
    for task, (model, version, columns) in loaded.items():
        probability, version_column = OUTPUT_COLUMNS[task]
        members = in_population(population, task).to_numpy()
        out[probability] = np.nan
        if members.any():
            inputs = model_inputs(population.loc[members], columns)
            out.loc[members, probability] = np.asarray(model.predict(inputs))[:, 1].astype(float)
            if reasons is not None:
                users = out.loc[members, "user_id"]
                explained.append(score_reasons(model, inputs, users, MODEL_NAMES[task], version, reasons))
        out[version_column] = str(version)
    if reasons is None:
        return out, None
    frame = pd.concat(explained, ignore_index=True) if explained else pd.DataFrame(columns=list(REASON_TYPES))
    return out, frame[list(REASON_TYPES)]


# The reason partitions' columns, in order, with their Spark types (user_score_reasons reads them).
REASON_TYPES = {
    "user_id": "bigint",
    "model_name": "string",
    "model_version": "string",
    "reason_rank": "bigint",
    "feature": "string",
    "contribution": "double",
    "base_value": "double",
    "margin": "double",
    "feature_value": "string",
    "direction": "string",
    "reason": "string",
}


def score_reasons(
    model, inputs: pd.DataFrame, user_ids: pd.Series, name: str, version: str, method: str
) -> pd.DataFrame:
    """The top reasons behind each scored user's probability (ml.propensity.reasons), one row per reason."""
    pipeline = model.get_raw_model()  # the sklearn pipeline the pyfunc wraps
    grouped, base, margin = contributions(pipeline, inputs, approximate=method == "approximate")
    reasons = top_reasons(grouped, base, margin, explained_inputs(pipeline, inputs))
    reasons.insert(0, "user_id", user_ids.to_numpy(dtype="int64")[reasons.pop("row").to_numpy()])
    reasons.insert(1, "model_name", name)
    reasons.insert(2, "model_version", str(version))
    return reasons
