"""The doubly robust (AIPW) estimator of a policy's incremental value on a randomised campaign.

Why this estimator, and how policies are rebuilt out of time: ml.targeting.campaign_evaluation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml.targeting.allocation import discount

POLICIES = ("uplift", "propensity", "random", "none")


NO_COUPON = "none"


Z_95 = 1.959964


def outcome_margin(frame: pd.DataFrame, margin_rate: float) -> np.ndarray:
    """Y: what a user's 7 days were worth to the shop (margin on revenue minus the discount paid)."""
    return frame["revenue_7d"].to_numpy(float) * margin_rate - frame["coupon_cost_7d"].to_numpy(float)


def assignment_shares(actions: pd.Series) -> pd.Series:
    """P(action) in the campaign: the share of its users who got nothing or each coupon (known by design)."""
    return actions.value_counts(normalize=True)


def predicted_margins(effects: pd.DataFrame, order_value: np.ndarray, margin_rate: float) -> pd.DataFrame:
    """m_a(x): each action's expected outcome from a coupon effect table (P(buy) per action)."""
    control = effects["p_buy_7d_control"].to_numpy(float)
    out = {NO_COUPON: control * order_value * margin_rate}
    for column in [c for c in effects if c.startswith("lift_")]:
        code = column.removeprefix("lift_")
        p_buy = control + effects[column].to_numpy(float)
        codes = np.full(len(p_buy), code, dtype=object)
        out[code] = p_buy * (order_value * margin_rate - discount(order_value, codes))
    return pd.DataFrame(out, index=effects.index)


def doubly_robust_scores(
    actions: pd.Series, outcome: np.ndarray, predicted: pd.DataFrame, shares: pd.Series
) -> pd.DataFrame:
    """G(u, a) for every user and action: the outcome model corrected by the randomised residual."""
    scores = {}
    for action in predicted.columns:
        got = (actions == action).to_numpy()
        share = float(shares.get(action, 0.0))
        residual = outcome - predicted[action].to_numpy(float)
        scores[action] = predicted[action].to_numpy(float) + np.where(got, residual / share if share else 0.0, 0.0)
    return pd.DataFrame(scores, index=predicted.index)


def policy_increments(scores: pd.DataFrame, user_ids: np.ndarray, picks: pd.DataFrame) -> np.ndarray:
    """Per campaign user: G(u, the policy's coupon) - G(u, nothing); 0 for users the policy leaves alone."""
    position = pd.Series(np.arange(len(user_ids)), index=user_ids)
    increments = np.zeros(len(user_ids))
    if picks.empty:
        return increments
    rows = position.reindex(picks["user_id"].to_numpy()).to_numpy()
    known = ~np.isnan(rows)
    rows = rows[known].astype(int)
    codes = picks["coupon_code"].to_numpy()[known]
    column = pd.Series(np.arange(scores.shape[1]), index=scores.columns).reindex(codes).to_numpy()
    valued = ~np.isnan(column)  # a coupon the outcome model does not know cannot be valued: it counts 0
    chosen = np.full(len(rows), np.nan)
    chosen[valued] = scores.to_numpy(float)[rows[valued], column[valued].astype(int)]
    increments[rows] = np.nan_to_num(chosen - scores[NO_COUPON].to_numpy()[rows])
    return increments


def summed(values: np.ndarray) -> tuple[float, float]:
    """(sum, variance of the sum) of independent per-user values."""
    n = len(values)
    return float(values.sum()), float(n * values.var(ddof=1)) if n > 1 else 0.0
