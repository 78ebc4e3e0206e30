"""The pipeline's own holdouts as evidence, and how it pools with the campaigns'.

The rules are described in ml.targeting.policy_gate, which decides from this evidence.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ml.config import settings

N_BOOT = 500


Z_95 = 1.959964


# Neither arm leads on a holdout with fewer buyers than this: a handful of orders says little about spread.
MIN_HOLDOUT_BUYERS = 15


def arm_values(outcomes: pd.DataFrame, margin_rate: float) -> pd.DataFrame:
    """Per-user realised value (treated: margin minus discount paid; holdout: margin) of matured sends."""
    value = outcomes["revenue_7d"].to_numpy(float) * margin_rate - np.where(
        outcomes["is_holdout"].to_numpy(bool), 0.0, outcomes["coupon_cost_7d"].to_numpy(float)
    )
    return outcomes.assign(value=value)


def adjusted_arm_values(outcomes: pd.DataFrame, margin_rate: float) -> tuple[pd.DataFrame, dict[str, dict]]:
    """arm_values with each policy arm's values adjusted by pre-send spend (cuped_adjusted); the per-arm
    theta and interval width ratio."""
    frame = arm_values(outcomes, margin_rate)
    arms, adjustment = [], {}
    for policy, arm in frame.groupby("policy", sort=True):
        adjusted, theta, ratio = cuped_adjusted(arm)
        arms.append(adjusted)
        adjustment[str(policy)] = {"theta": round(theta, 6), "width_ratio": round(ratio, 4)}
    return (pd.concat(arms).loc[frame.index] if arms else frame), adjustment


def pooled_variance(treated: pd.Series, held: pd.Series) -> float:
    """The within-group variance of treated and held-out values, pooled (Student's equal-variance form)."""
    dof = len(treated) + len(held) - 2
    return float(((len(treated) - 1) * treated.var(ddof=1) + (len(held) - 1) * held.var(ddof=1)) / dof)


def arm_increment(arm: pd.DataFrame) -> tuple[float, float, list[pd.DataFrame]]:
    """(incremental value, its variance, the treated rows used) of one arm over its matured send days.

    Every user the arm picks is held out with the same probability (a salted hash), whatever the day,
    so the days are pooled: sum(treated) - n_treated x mean(holdout). Comparing day by day instead
    would lean on holdouts of one or two users, whose zero revenue on most days reads as pure lift.
    The variance pools treated and held-out users: most users buy nothing and a few spend a lot, so a
    holdout with a handful of buyers understates the spread on its own (a holdout of 191 users with 8
    buyers put the truth far outside a separate-variances interval on the 35-day loop).
    """
    treated = arm.loc[~arm["is_holdout"].astype(bool), "value"]
    held = arm.loc[arm["is_holdout"].astype(bool), "value"]
    if len(treated) < 2 or len(held) < 2:
        return 0.0, 0.0, []
    estimate = treated.sum() - len(treated) * held.mean()
    variance = len(treated) ** 2 * pooled_variance(treated, held) * (1 / len(treated) + 1 / len(held))
    return float(estimate), float(variance), [arm[~arm["is_holdout"].astype(bool)]]


def cuped_adjusted(arm: pd.DataFrame) -> tuple[pd.DataFrame, float, float]:
    """(the arm with `value` adjusted by pre-send spend, theta, interval width ratio adjusted / unadjusted).

    A regression adjustment (CUPED, Deng et al. 2013): value - theta x (pre_send_revenue - its mean), with
    theta the slope of value on pre-send spend pooled within the treated and the held-out users (each centred
    on its own means, so the coupon's effect does not leak into the slope). Pre-send spend was fixed before
    the send, so the treated minus held-out difference keeps its expectation; the spread it explains (big
    spenders before spend more after) leaves the variance. A user without the covariate (a warehouse built
    before it existed) counts at the mean, unadjusted. The width ratio is sqrt(adjusted / unadjusted pooled
    variance): 1 when the covariate says nothing.
    """
    if "pre_send_revenue" not in arm or len(arm) < 4:
        return arm, 0.0, 1.0
    held = arm["is_holdout"].astype(bool).to_numpy()
    raw = arm["pre_send_revenue"].to_numpy(float)
    x = np.where(np.isnan(raw), np.nanmean(raw) if np.isfinite(raw).any() else 0.0, raw)
    value = arm["value"].to_numpy(float)
    centred_x, centred_v = x.copy(), value.copy()
    for group in (held, ~held):
        if group.any():
            centred_x[group] -= x[group].mean()
            centred_v[group] -= value[group].mean()
    spread = float((centred_x**2).sum())
    theta = float((centred_x * centred_v).sum() / spread) if spread > 0 else 0.0
    adjusted = arm.assign(value=value - theta * (x - x.mean()))
    if min(held.sum(), (~held).sum()) < 2:
        return adjusted, theta, 1.0
    before = pooled_variance(arm.loc[~held, "value"], arm.loc[held, "value"])
    after = pooled_variance(adjusted.loc[~held, "value"], adjusted.loc[held, "value"])
    return adjusted, theta, float(np.sqrt(after / before)) if before > 0 else 1.0


def _return_per_euro(arm: pd.DataFrame, budget_euros: float) -> float:
    estimate, _, used = arm_increment(arm)
    return float(estimate / budget_euros) if used and budget_euros > 0 else float("nan")


def compare_policies(outcomes: pd.DataFrame, seed: int = 0) -> dict[str, Any]:
    """Holdout evidence: realised value at the planned budget per policy arm, and uplift minus propensity.

    Each arm's value comes with its variance (arm_increment's, scaled to the budget); the difference with a
    95% bootstrap interval and the bootstrap variance.
    """
    cfg = settings()
    policies = ("uplift", "propensity")
    frame, adjustment = adjusted_arm_values(outcomes, cfg.gross_margin_rate)
    # Every matured send day counts in both arms' planned budget, also a day an arm funded nobody.
    days = frame["as_of_date"].nunique()
    budgets = {
        p: days * float(frame.loc[frame["policy"] == p, "arm_budget"].median()) if (frame["policy"] == p).any() else 0.0
        for p in policies
    }
    point = {p: _return_per_euro(frame[frame["policy"] == p], budgets[p]) for p in policies}
    result: dict[str, Any] = {
        f"{p}_value_at_budget": None if np.isnan(v) else round(v * cfg.daily_coupon_budget, 2) for p, v in point.items()
    }
    for p in policies:
        _, variance, used = arm_increment(frame[frame["policy"] == p])
        scale = cfg.daily_coupon_budget / budgets[p] if used and budgets[p] > 0 else float("nan")
        result[f"{p}_value_variance"] = None if np.isnan(scale) else variance * scale**2
    result["adjustment"] = adjustment
    result["send_days"] = int(days)
    result["n_users"] = {p: int((frame["policy"] == p).sum()) for p in policies}
    if any(np.isnan(v) for v in point.values()):
        return {**result, "difference": None, "ci_low": None, "ci_high": None}
    held_out = frame[frame["is_holdout"].astype(bool)]
    result["holdout_buyers"] = {
        p: int((held_out.loc[held_out["policy"] == p, "revenue_7d"] > 0).sum()) for p in policies
    }
    rng = np.random.default_rng(seed)
    # A residual bootstrap within each arm: treated and holdout means keep their own level, and both draw
    # their noise from the arm's pooled residuals, like the pooled variance of arm_increment (a holdout
    # with few buyers resampled on its own would understate its spread).
    draws = np.zeros(N_BOOT)
    for p in policies:
        arm = frame[frame["policy"] == p]
        is_held = arm["is_holdout"].astype(bool).to_numpy()
        treated, held = arm["value"].to_numpy()[~is_held], arm["value"].to_numpy()[is_held]
        residuals = np.concatenate([treated - treated.mean(), held - held.mean()])
        noise_t, noise_h = np.array(
            [[rng.choice(residuals, n).mean() for n in (len(treated), len(held))] for _ in range(N_BOOT)]
        ).T
        value = len(treated) * (treated.mean() + noise_t - held.mean() - noise_h) / budgets[p]
        draws += value if p == "uplift" else -value
    draws *= cfg.daily_coupon_budget
    low, high = np.percentile(draws, [2.5, 97.5])
    difference = (point["uplift"] - point["propensity"]) * cfg.daily_coupon_budget
    interval = {"ci_low": round(float(low), 2), "ci_high": round(float(high), 2)}
    return {**result, "difference": round(difference, 2), "difference_variance": float(draws.var(ddof=1)), **interval}


def holdout_is_informative(comparison: dict[str, Any]) -> bool:
    """Whether the holdout evidence may count: both arms valued, and each holdout with enough buyers."""
    if comparison.get("difference") is None:
        return False
    return min(comparison.get("holdout_buyers", {}).values(), default=0) >= MIN_HOLDOUT_BUYERS


def pool(estimates: list[tuple[float, float]]) -> tuple[float, float] | None:
    """Inverse-variance pooled (estimate, variance) of independent estimates of one quantity."""
    usable = [(e, v) for e, v in estimates if e is not None and v is not None and np.isfinite(e) and v > 0]
    if not usable:
        return None
    weights = np.array([1 / v for _, v in usable])
    values = np.array([e for e, _ in usable])
    return float((weights * values).sum() / weights.sum()), float(1 / weights.sum())


def interval(estimate: float, variance: float) -> tuple[float, float]:
    half = Z_95 * float(np.sqrt(max(variance, 0.0)))
    return estimate - half, estimate + half


def pooled_evidence(campaign: dict[str, dict[str, float]], holdout: dict[str, Any]) -> dict[str, Any]:
    """Campaign and holdout evidence pooled: each policy's value and uplift minus propensity, with 95% intervals."""
    use_holdout = holdout_is_informative(holdout)
    pooled: dict[str, Any] = {
        "holdout_counted": use_holdout,
        "campaigns": campaign.get("uplift", {}).get("campaigns", 0),
    }
    for p in ("uplift", "propensity"):
        found = pool(
            [
                (campaign[p]["value"], campaign[p]["value_variance"]) if p in campaign else (None, None),
                (holdout.get(f"{p}_value_at_budget"), holdout.get(f"{p}_value_variance"))
                if use_holdout
                else (None, None),
            ]
        )
        pooled[f"{p}_value"] = None if found is None else found[0]
        pooled[f"{p}_value_variance"] = None if found is None else found[1]
    found = pool(
        [
            (campaign["uplift"]["difference_to_propensity"], campaign["uplift"]["difference_to_propensity_variance"])
            if "uplift" in campaign
            else (None, None),
            (holdout.get("difference"), holdout.get("difference_variance")) if use_holdout else (None, None),
        ]
    )
    if found is None:
        return {**pooled, "difference": None, "ci_low": None, "ci_high": None}
    low, high = interval(*found)
    return {**pooled, "difference": found[0], "difference_variance": found[1], "ci_low": low, "ci_high": high}


def load_matured_outcomes(con, before) -> pd.DataFrame:
    from ml.warehouse.read import table_names

    tables = table_names(con)
    if "int_coupon_target_outcomes" not in tables:
        return pd.DataFrame()
    return con.execute(
        """
        select as_of_date, policy, is_holdout, arm_budget, revenue_7d, coupon_cost_7d, pre_send_revenue
        from int_coupon_target_outcomes
        where is_matured_7d and as_of_date < ?
        """,
        [before],
    ).df()
