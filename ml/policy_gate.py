"""Which targeting policy leads: decided by realised results on the randomised holdouts, never assumed.

Both policies run every day, each on its own random share of users with a budget in proportion
(ml.targeting), and each keeps its own random holdout. For every matured send (7-day window landed,
`int_coupon_target_outcomes`), a user is worth

    treated: revenue in the 7 days x gross margin rate - the discount actually paid
    holdout: revenue in the 7 days x gross margin rate

and an arm's realised incremental margin is sum(treated) - n_treated x mean(holdout), over all its
matured send days (each pick is held out with the same probability, so days pool). Divided by the
arm's planned budget over those days, that is its return per euro of budget; times the daily budget,
its value at the planned budget. The uplift policy is promoted over the propensity one only when its
value is higher with the 95% bootstrap lower bound of the difference above zero; the same rule, the
other way round, puts the propensity policy back. The decision is an audit row (model `coupon_policy`)
in `model_promotions`; the rules lead until the first decision. The interval is checked again every
day on the growing evidence without a correction for repeated looks, so a flip is likelier than 5% on
a shop where the policies are equal; the rule back stops a wrong leader from staying. Neither rule acts while
a holdout has fewer than MIN_HOLDOUT_BUYERS buyers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ml.config import settings

POLICY_MODEL = "coupon_policy"
DEFAULT_POLICY = "propensity"
N_BOOT = 500
# Neither arm leads on a holdout with fewer buyers than this: a handful of orders says little about spread.
MIN_HOLDOUT_BUYERS = 15


def champion_policy(con=None) -> str:
    """The policy the newest coupon_policy audit row names; the propensity rules before any decision."""
    folder = settings().audit_dir / "model_promotions"
    files = sorted(folder.glob("*.parquet")) if folder.exists() else []
    if not files:
        return DEFAULT_POLICY
    rows = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    rows = rows[(rows["model_name"] == POLICY_MODEL) & rows["to_version"].notna()]
    return DEFAULT_POLICY if rows.empty else str(rows.sort_values("changed_at")["to_version"].iloc[-1])


def arm_values(outcomes: pd.DataFrame, margin_rate: float) -> pd.DataFrame:
    """Per-user realised value (treated: margin minus discount paid; holdout: margin) of matured sends."""
    value = outcomes["revenue_7d"].to_numpy(float) * margin_rate - np.where(
        outcomes["is_holdout"].to_numpy(bool), 0.0, outcomes["coupon_cost_7d"].to_numpy(float)
    )
    return outcomes.assign(value=value)


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


def _return_per_euro(arm: pd.DataFrame, budget_euros: float) -> float:
    estimate, _, used = arm_increment(arm)
    return float(estimate / budget_euros) if used and budget_euros > 0 else float("nan")


def compare_policies(outcomes: pd.DataFrame, seed: int = 0) -> dict[str, Any]:
    """Realised value at the planned budget per policy and the bootstrap interval of uplift minus propensity."""
    cfg = settings()
    frame = arm_values(outcomes, cfg.gross_margin_rate)
    policies = ("uplift", "propensity")
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
    low, high = np.percentile(draws * cfg.daily_coupon_budget, [2.5, 97.5])
    difference = (point["uplift"] - point["propensity"]) * cfg.daily_coupon_budget
    interval = {"ci_low": round(float(low), 2), "ci_high": round(float(high), 2)}
    return {**result, "difference": round(difference, 2), **interval}


def decide(comparison: dict[str, Any], current: str) -> str:
    """The policy that should lead given the comparison (keeps `current` unless the evidence is clear)."""
    if comparison["difference"] is None:
        return current
    if min(comparison.get("holdout_buyers", {}).values(), default=MIN_HOLDOUT_BUYERS) < MIN_HOLDOUT_BUYERS:
        return current  # too few buyers in a holdout to know its spread: wait for more send days
    if current != "uplift" and comparison["difference"] > 0 and comparison["ci_low"] > 0:
        return "uplift"
    if current == "uplift" and comparison["difference"] < 0 and comparison["ci_high"] < 0:
        return "propensity"
    return current


def load_matured_outcomes(con, before) -> pd.DataFrame:
    from ml.data import table_names

    tables = table_names(con)
    if "int_coupon_target_outcomes" not in tables:
        return pd.DataFrame()
    return con.execute(
        """
        select as_of_date, policy, is_holdout, arm_budget, revenue_7d, coupon_cost_7d
        from int_coupon_target_outcomes
        where is_matured_7d and as_of_date < ?
        """,
        [before],
    ).df()


def gate_policy(con, as_of) -> dict[str, Any]:
    """Compare the arms on every send matured before `as_of`; record a change of leader; return the evidence."""
    from ml.registry import record_audit

    current = champion_policy()
    outcomes = load_matured_outcomes(con, as_of)
    comparison = compare_policies(outcomes) if len(outcomes) else {"difference": None}
    leader = decide(comparison, current)
    if leader != current:
        reason = (
            f"realised value at the planned budget: uplift minus propensity {comparison['difference']:+.2f} "
            f"(95% CI {comparison['ci_low']:+.2f} .. {comparison['ci_high']:+.2f}) over sends before {as_of}"
        )
        record_audit(POLICY_MODEL, "policy_promote", current, leader, reason, comparison, actor="policy-gate")
    return {"champion_policy": leader, "previous": current, **comparison}
