"""How well a coupon effect model ranks users, measured on a randomised campaign it never saw.

Users are sorted by predicted effect (highest first). With n_t(k), n_c(k) treated and control users and
y_t(k), y_c(k) their purchases among the top k of N:

- Qini curve (Radcliffe 2007): Q(k) = y_t(k) - y_c(k) * n_t(k) / n_c(k), the incremental purchases
  of targeting the top k. **Qini coefficient** = the mean over k of (Q(k) - Q(N) * k / N) / N: the area
  between the model's curve and random targeting, with both axes as shares of the N users (so it reads as
  incremental purchases per user; 0 = no better than random).
- Uplift curve (Gutierrez & Gerardy 2017): U(k) = (y_t(k)/n_t(k) - y_c(k)/n_c(k)) * k.
  **AUUC** = the mean over k of U(k) / N, the same normalisation.
- **Uplift at top p%**: treated purchase rate minus control purchase rate among the top p%.

causalml's `qini_score` / `auuc_score` use the same curves but normalise them differently, so the numbers
are not interchangeable. Confidence intervals are percentile bootstraps over users.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

TOP_SHARES = (0.1, 0.2, 0.3)


def _cumulative(score: np.ndarray, treated: np.ndarray, outcome: np.ndarray):
    order = np.argsort(-score, kind="stable")
    t = treated[order].astype(float)
    y = outcome[order].astype(float)
    return np.cumsum(t), np.cumsum(1 - t), np.cumsum(y * t), np.cumsum(y * (1 - t))


def qini_curve(score, treated, outcome) -> np.ndarray:
    """Q(k) for k = 1..N (incremental purchases of targeting the top k)."""
    n_t, n_c, y_t, y_c = _cumulative(np.asarray(score), np.asarray(treated, bool), np.asarray(outcome))
    return y_t - np.divide(y_c * n_t, n_c, out=np.zeros_like(y_c), where=n_c > 0)


def qini_coefficient(score, treated, outcome) -> float:
    q = qini_curve(score, treated, outcome)
    n = len(q)
    random_line = q[-1] * np.arange(1, n + 1) / n
    return float(np.mean(q - random_line) / n)


def auuc(score, treated, outcome) -> float:
    n_t, n_c, y_t, y_c = _cumulative(np.asarray(score), np.asarray(treated, bool), np.asarray(outcome))
    rate_t = np.divide(y_t, n_t, out=np.zeros_like(y_t), where=n_t > 0)
    rate_c = np.divide(y_c, n_c, out=np.zeros_like(y_c), where=n_c > 0)
    k = np.arange(1, len(y_t) + 1)
    return float(np.mean((rate_t - rate_c) * k) / len(k))


def uplift_at(score, treated, outcome, share: float) -> float:
    """Treated minus control purchase rate among the top `share` of users by score."""
    score, treated, outcome = np.asarray(score), np.asarray(treated, bool), np.asarray(outcome, float)
    top = np.argsort(-score, kind="stable")[: max(1, int(round(len(score) * share)))]
    t, c = top[treated[top]], top[~treated[top]]
    if len(t) == 0 or len(c) == 0:
        return float("nan")
    return float(outcome[t].mean() - outcome[c].mean())


def uplift_metrics(score, treated, outcome) -> dict[str, float]:
    metrics = {"qini": qini_coefficient(score, treated, outcome), "auuc": auuc(score, treated, outcome)}
    for share in TOP_SHARES:
        metrics[f"uplift_top{int(share * 100)}"] = uplift_at(score, treated, outcome, share)
    return metrics


def bootstrap_uplift_metrics(score, treated, outcome, n_boot: int = 200, seed: int = 0) -> dict[str, float]:
    """Each metric with its 95% percentile bootstrap interval (`<name>_ci_low`, `<name>_ci_high`)."""
    score, treated, outcome = np.asarray(score), np.asarray(treated, bool), np.asarray(outcome, float)
    point = uplift_metrics(score, treated, outcome)
    if n_boot <= 0:
        return point
    rng = np.random.default_rng(seed)
    draws = {name: [] for name in point}
    for _ in range(n_boot):
        idx = rng.integers(0, len(score), len(score))
        for name, value in uplift_metrics(score[idx], treated[idx], outcome[idx]).items():
            draws[name].append(value)
    out = dict(point)
    for name, values in draws.items():
        low, high = np.nanpercentile(values, [2.5, 97.5])
        out[f"{name}_ci_low"], out[f"{name}_ci_high"] = float(low), float(high)
    return out


def uplift_by_decile(score, treated, outcome) -> pd.DataFrame:
    """Per decile of predicted effect (1 = highest): mean predicted and observed uplift with a 95% interval."""
    score, treated, outcome = np.asarray(score), np.asarray(treated, bool), np.asarray(outcome, float)
    order = np.argsort(-score, kind="stable")
    rows = []
    for decile, idx in enumerate(np.array_split(order, 10), start=1):
        t, c = outcome[idx][treated[idx]], outcome[idx][~treated[idx]]
        observed = t.mean() - c.mean() if len(t) and len(c) else np.nan
        se = np.sqrt(t.var() / max(len(t), 1) + c.var() / max(len(c), 1)) if len(t) and len(c) else np.nan
        rows.append(
            {
                "decile": decile,
                "predicted_uplift": float(score[idx].mean()),
                "observed_uplift": float(observed),
                "ci_half_width": float(1.96 * se),
                "n_treated": int(len(t)),
                "n_control": int(len(c)),
            }
        )
    return pd.DataFrame(rows)


def uplift_by_decile_figure(table: pd.DataFrame, title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.bar(
        table["decile"],
        table["observed_uplift"],
        yerr=table["ci_half_width"],
        color="tab:blue",
        alpha=0.7,
        capsize=3,
        label="observed (treated - control), 95% CI",
    )
    ax.plot(table["decile"], table["predicted_uplift"], "o-", color="tab:orange", label="predicted")
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set(xlabel="decile of predicted effect (1 = highest)", ylabel="7-day purchase rate uplift", title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
