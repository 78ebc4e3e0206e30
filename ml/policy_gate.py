"""Which targeting policy leads: decided by realised results on the randomised holdouts, never assumed.

Both policies run every day, each on its own random share of users with a budget in proportion
(ml.targeting), and each keeps its own random holdout. For every matured send (7-day window landed,
`int_coupon_target_outcomes`), a user is worth

    treated: revenue in the 7 days x gross margin rate - the discount actually paid
    holdout: revenue in the 7 days x gross margin rate

and an arm's realised incremental margin is sum(treated) - n_treated x mean(holdout). Divided by the
arm's planned budget over those days, that is its return per euro of budget; times the daily budget, its
value at the planned budget. The uplift policy is promoted over the propensity one only when its value
is higher with the 95% bootstrap lower bound of the difference above zero; the same rule, the other way
round, puts the propensity policy back. The decision is an audit row (model `coupon_policy`) in
`model_promotions`; the rules lead until the first decision.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ml.config import settings

POLICY_MODEL = "coupon_policy"
DEFAULT_POLICY = "propensity"
N_BOOT = 500


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


def _return_per_euro(frame: pd.DataFrame, budget_euros: float) -> float:
    treated = frame.loc[~frame["is_holdout"], "value"].to_numpy()
    held = frame.loc[frame["is_holdout"], "value"].to_numpy()
    if len(treated) == 0 or len(held) == 0 or budget_euros <= 0:
        return float("nan")
    return float((treated.sum() - len(treated) * held.mean()) / budget_euros)


def compare_policies(outcomes: pd.DataFrame, seed: int = 0) -> dict[str, Any]:
    """Realised value at the planned budget per policy and the bootstrap interval of uplift minus propensity."""
    cfg = settings()
    frame = arm_values(outcomes, cfg.gross_margin_rate)
    share = {"uplift": None, "propensity": None}
    budgets = {}
    for policy in share:
        arm = frame[frame["policy"] == policy]
        # The planned budget of an arm over its matured send days (its share is recorded per row).
        days = arm.groupby("as_of_date")["arm_budget"].first()
        budgets[policy] = float(days.sum())
    point = {p: _return_per_euro(frame[frame["policy"] == p], budgets[p]) for p in share}
    result: dict[str, Any] = {
        f"{p}_value_at_budget": None if np.isnan(v) else round(v * cfg.daily_coupon_budget, 2) for p, v in point.items()
    }
    if any(np.isnan(v) for v in point.values()):
        return {**result, "difference": None, "ci_low": None, "ci_high": None}
    rng = np.random.default_rng(seed)
    groups = {key: g for key, g in frame.groupby(["policy", "is_holdout"])}
    draws = []
    for _ in range(N_BOOT):
        resampled = pd.concat([g.iloc[rng.integers(0, len(g), len(g))] for g in groups.values()])
        values = {p: _return_per_euro(resampled[resampled["policy"] == p], budgets[p]) for p in share}
        draws.append((values["uplift"] - values["propensity"]) * cfg.daily_coupon_budget)
    low, high = np.percentile(draws, [2.5, 97.5])
    difference = (point["uplift"] - point["propensity"]) * cfg.daily_coupon_budget
    return {
        **result,
        "difference": round(difference, 2),
        "ci_low": round(float(low), 2),
        "ci_high": round(float(high), 2),
    }


def decide(comparison: dict[str, Any], current: str) -> str:
    """The policy that should lead given the comparison (keeps `current` unless the evidence is clear)."""
    if comparison["difference"] is None:
        return current
    if current != "uplift" and comparison["difference"] > 0 and comparison["ci_low"] > 0:
        return "uplift"
    if current == "uplift" and comparison["difference"] < 0 and comparison["ci_high"] < 0:
        return "propensity"
    return current


def load_matured_outcomes(con, before) -> pd.DataFrame:
    tables = {r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()}
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
