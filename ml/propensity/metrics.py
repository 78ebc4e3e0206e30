"""Model quality: metrics on a labelled window and the plots logged to MLflow."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    f1_score,
    log_loss,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)


def best_f1_threshold(y_true: np.ndarray, proba: np.ndarray) -> float:
    """The probability cut that maximises F1 (chosen on validation, applied to test)."""
    precision, recall, thresholds = precision_recall_curve(y_true, proba)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    return float(thresholds[int(np.argmax(f1[:-1]))]) if len(thresholds) else 0.5


def top_decile(y_true: np.ndarray, proba: np.ndarray) -> tuple[float, float]:
    """(lift, capture) of the 10% highest-scored users."""
    n_top = max(1, int(math.ceil(len(proba) * 0.1)))
    top = np.argsort(-proba, kind="stable")[:n_top]
    base = y_true.mean()
    hits = y_true[top].sum()
    return float(y_true[top].mean() / base) if base else 0.0, float(hits / max(y_true.sum(), 1))


def classification_metrics(y_true, proba, threshold: float, prefix: str) -> dict[str, float]:
    y_true = np.asarray(y_true, dtype=int)
    proba = np.clip(np.asarray(proba, dtype=float), 1e-7, 1 - 1e-7)
    predicted = (proba >= threshold).astype(int)
    lift, capture = top_decile(y_true, proba)
    return {
        f"{prefix}_roc_auc": float(roc_auc_score(y_true, proba)),
        f"{prefix}_pr_auc": float(average_precision_score(y_true, proba)),
        f"{prefix}_log_loss": float(log_loss(y_true, proba, labels=[0, 1])),
        f"{prefix}_brier": float(brier_score_loss(y_true, proba)),
        f"{prefix}_lift_top_decile": lift,
        f"{prefix}_capture_top_decile": capture,
        f"{prefix}_precision": float(precision_score(y_true, predicted, zero_division=0)),
        f"{prefix}_recall": float(recall_score(y_true, predicted, zero_division=0)),
        f"{prefix}_f1": float(f1_score(y_true, predicted, zero_division=0)),
        f"{prefix}_positive_rate": float(y_true.mean()),
        f"{prefix}_rows": float(len(y_true)),
    }


def quality_figures(y_true, proba, importance: pd.Series, title: str) -> dict[str, object]:
    """ROC, precision-recall, calibration, gains by decile and feature importance, as matplotlib figures."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    y_true = np.asarray(y_true, dtype=int)
    proba = np.asarray(proba, dtype=float)
    figures = {}

    fig, ax = plt.subplots(figsize=(5, 5))
    fpr, tpr, _ = roc_curve(y_true, proba)
    ax.plot(fpr, tpr, label=f"AUC {roc_auc_score(y_true, proba):.3f}")
    ax.plot([0, 1], [0, 1], "--", color="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=f"ROC: {title}")
    ax.legend(loc="lower right")
    figures["roc_curve.png"] = fig

    fig, ax = plt.subplots(figsize=(5, 5))
    precision, recall, _ = precision_recall_curve(y_true, proba)
    ax.plot(recall, precision, label=f"AP {average_precision_score(y_true, proba):.3f}")
    ax.axhline(y_true.mean(), linestyle="--", color="grey", label="base rate")
    ax.set(xlabel="recall", ylabel="precision", title=f"Precision-recall: {title}")
    ax.legend()
    figures["precision_recall_curve.png"] = fig

    fig, ax = plt.subplots(figsize=(5, 5))
    bins = pd.qcut(proba, 10, labels=False, duplicates="drop")
    calib = pd.DataFrame({"bin": bins, "p": proba, "y": y_true}).groupby("bin").mean()
    ax.plot(calib["p"], calib["y"], "o-", label="model")
    top = max(calib["p"].max(), calib["y"].max())
    ax.plot([0, top], [0, top], "--", color="grey", label="perfect")
    ax.set(xlabel="mean predicted probability", ylabel="observed rate", title=f"Calibration: {title}")
    ax.legend()
    figures["calibration.png"] = fig

    fig, ax = plt.subplots(figsize=(6, 4))
    order = np.argsort(-proba, kind="stable")
    deciles = np.array_split(y_true[order], 10)
    captured = np.cumsum([d.sum() for d in deciles]) / max(y_true.sum(), 1)
    ax.bar(range(1, 11), captured, color="tab:blue", alpha=0.7, label="cumulative capture")
    ax.plot(range(1, 11), np.arange(1, 11) / 10, "--", color="grey", label="random")
    ax.set(xlabel="decile (1 = highest score)", ylabel="share of positives", title=f"Gains: {title}")
    ax.legend()
    figures["gains_by_decile.png"] = fig

    fig, ax = plt.subplots(figsize=(6, 7))
    shown = importance.head(20)[::-1]
    ax.barh(shown.index, shown.values)
    ax.set(title=f"Feature importance: {title}")
    fig.tight_layout()
    figures["feature_importance.png"] = fig
    return figures
