"""The monitoring checks: the metrics on matured labels, and the bands that make a value ok, warn or alert.

Realised metrics compare a scoring date's probabilities with the labels once their 30-day window has closed;
until then the row is `pending`. Each band is set against the version's own test figure where one exists
(ROC AUC a margin below it, PR AUC and top-decile lift a share of it, Brier a multiple of it); calibration
error and PSI have absolute bands. Only an alert on realised ROC AUC or on the score PSI retrains a model
(RETRAIN_ON); the other alerts and every warning are for people to read.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from ml.config import settings
from ml.propensity.metrics import top_decile

REALISED = ("roc_auc", "pr_auc", "brier", "ece", "top_decile_lift")
# (metric, feature): the score's PSI has no feature; an input's PSI names it.
RETRAIN_ON = {"roc_auc", "score_psi"}
PSI_WARN, PSI_ALERT = 0.10, 0.25


@dataclass(frozen=True)
class Band:
    worse: str  # "below" or "above": which side of the threshold is bad
    kind: str  # "drop": test figure minus; "ratio": test figure times; "absolute": the numbers themselves
    warn: float
    alert: float
    test_tag: str | None  # the version tag holding its test figure


def bands() -> dict[str, Band]:
    margin = settings().monitor_auc_margin
    return {
        "roc_auc": Band("below", "drop", margin / 2, margin, "test_roc_auc"),
        "pr_auc": Band("below", "ratio", 0.85, 0.70, "test_pr_auc"),
        "brier": Band("above", "ratio", 1.15, 1.30, "test_brier"),
        "ece": Band("above", "absolute", 0.05, 0.10, None),
        "top_decile_lift": Band("below", "ratio", 0.85, 0.70, "test_lift_top_decile"),
        "score_psi": Band("above", "absolute", PSI_WARN, PSI_ALERT, None),
        "feature_psi": Band("above", "absolute", PSI_WARN, PSI_ALERT, None),
    }


def thresholds(band: Band, reference: float | None) -> tuple[float | None, float | None]:
    """(warn, alert) thresholds of a band; none for a relative band without the version's test figure."""
    if band.kind == "absolute":
        return band.warn, band.alert
    if reference is None or np.isnan(reference):
        return None, None
    if band.kind == "drop":
        return reference - band.warn, reference - band.alert
    return reference * band.warn, reference * band.alert


def status(
    band: Band, value: float | None, warn: float | None, alert: float | None, reference=None, noise: float = 0.0
) -> str:
    """ok, warn or alert; `noise`: how far the value can be from the reference by chance (95%), which an
    alert must also exceed, so a small population's random dip does not retrain a model."""
    if value is None or np.isnan(value):
        return "pending"
    if alert is None:
        return "ok"
    worse = (lambda a, b: a < b) if band.worse == "below" else (lambda a, b: a > b)
    if worse(value, alert) and (reference is None or abs(reference - value) > noise):
        return "alert"
    return "warn" if worse(value, warn) else "ok"


def auc_noise(auc: float, positives: int, negatives: int) -> float:
    """95% half-width of the difference of two ROC AUCs of this size (Hanley and McNeil 1982, for each of
    the realised and the test figure, taken alike): what a realised dip must exceed to alert."""
    if not positives or not negatives or np.isnan(auc):
        return float("inf")
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    variance = (auc * (1 - auc) + (positives - 1) * (q1 - auc**2) + (negatives - 1) * (q2 - auc**2)) / (
        positives * negatives
    )
    return float(1.96 * np.sqrt(2 * variance))


def expected_calibration_error(y_true: np.ndarray, proba: np.ndarray, n_bins: int = 10) -> float:
    """Mean |observed rate - mean probability| over 10 equal-width probability bins, weighted by their users."""
    bins = np.minimum((proba * n_bins).astype(int), n_bins - 1)
    total = 0.0
    for b in np.unique(bins):
        members = bins == b
        total += members.sum() * abs(y_true[members].mean() - proba[members].mean())
    return float(total / len(y_true))


def realised_metrics(y_true, proba) -> dict[str, float]:
    """The realised figures of one scoring date; NaN where a window has a single class."""
    y_true = np.asarray(y_true, dtype=int)
    proba = np.asarray(proba, dtype=float)
    both = len(np.unique(y_true)) == 2
    return {
        "roc_auc": float(roc_auc_score(y_true, proba)) if both else float("nan"),
        "pr_auc": float(average_precision_score(y_true, proba)) if both else float("nan"),
        "brier": float(brier_score_loss(y_true, proba)),
        "ece": expected_calibration_error(y_true, proba),
        "top_decile_lift": top_decile(y_true, proba)[0],
    }


def check_rows(
    metrics: dict[str, float | None],
    references: dict[str, float],
    feature: str | None = None,
    noise: dict[str, float] | None = None,
) -> list:
    """One row per metric: value, the version's test figure, both thresholds and the status (`noise`: per
    metric, the chance half-width an alert must exceed, see status)."""
    rows, all_bands, noise = [], bands(), noise or {}
    for metric, value in metrics.items():
        band = all_bands[metric]
        reference = references.get(band.test_tag) if band.test_tag else None
        warn, alert = thresholds(band, reference)
        rows.append(
            {
                "metric": metric,
                "feature": feature if metric == "feature_psi" else None,
                "value": None if value is None or np.isnan(value) else float(value),
                "reference_value": reference,
                "warn_threshold": warn,
                "alert_threshold": alert,
                "status": status(band, value, warn, alert, reference, noise.get(metric, 0.0)),
            }
        )
    return rows
