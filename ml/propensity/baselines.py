"""The classic scorers a model must beat: recency, frequency and the BG/NBD repeat-purchase model.

Each scores the rows of a user_features frame (higher = more likely to buy); none sees a label. BG/NBD is
fitted on the training rows only (ml.propensity.bgnbd) and scores the expected purchases in the next 30 days. The
model describes customers after their first purchase; a user who never bought scores 0, below every
customer (scoring them as brand-new customers, x = t_x = T = 0, would rank them above most lapsed buyers).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml.propensity.bgnbd import BgNbdFeatures

BASELINES = ("bgnbd", "recency", "frequency")


def recency_score(frame: pd.DataFrame) -> np.ndarray:
    """Fewer days since the last purchase scores higher; never bought scores lowest."""
    days = pd.to_numeric(frame["days_since_last_purchase"], errors="coerce").astype(float)
    return -days.fillna(days.max() + 1 if days.notna().any() else 0).to_numpy()


def frequency_score(frame: pd.DataFrame) -> np.ndarray:
    """More orders before the as-of date scores higher."""
    return pd.to_numeric(frame["count_purchases_lifetime"], errors="coerce").fillna(0).to_numpy(dtype=float)


def bgnbd_score(train: pd.DataFrame, frame: pd.DataFrame, horizon_days: int = 30) -> np.ndarray:
    """Expected purchases in the next `horizon_days` under a BG/NBD model fitted on `train`."""
    model = BgNbdFeatures(horizon_days=horizon_days).fit(train)
    scored = model.transform(frame)[f"bgnbd_expected_purchases_{horizon_days}d"].to_numpy(dtype=float)
    return np.where(np.isnan(scored), 0.0, scored)


def baseline_scores(train: pd.DataFrame, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    return {
        "bgnbd": bgnbd_score(train, frame),
        "recency": recency_score(frame),
        "frequency": frequency_score(frame),
    }


def roc_auc(y_true: np.ndarray, scores: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y_true, scores))
