"""The send list's arms: each day's users split, by salted hashes, into the leading policy's arm and the
challenger's, and a holdout in each (ml.targeting.plan explains the design).

The draws depend only on the user, the salt and the holdout period, so the driver and Spark's executors
(ml.targeting.spark_candidates) draw alike; `cfg` carries the driver's settings to the executors.
"""

from __future__ import annotations

import hashlib
from datetime import date

import numpy as np

from ml.config import Settings, settings

POLICIES = ("uplift", "propensity")
HOLDOUT_EPOCH = date(2000, 1, 3)  # a Monday: holdout periods start on Mondays


def salted_share(user_ids: np.ndarray, as_of: date, label: str, cfg: Settings | None = None) -> np.ndarray:
    """A number in [0, 1) per user, fixed for the `holdout_days` period that contains `as_of`."""
    cfg = cfg or settings()
    period = (as_of - HOLDOUT_EPOCH).days // cfg.holdout_days
    prefix = f"{cfg.holdout_salt}|{label}|{period}|"
    return np.array(
        [int.from_bytes(hashlib.blake2b(f"{prefix}{u}".encode(), digest_size=8).digest()) / 2**64 for u in user_ids]
    )


def arm_policies(champion_policy: str, uplift_available: bool) -> list[str]:
    """The day's arms: the leading policy's, and the challenger's where there is a coupon effect model."""
    if not uplift_available:
        return [champion_policy]
    return [champion_policy, *(p for p in POLICIES if p != champion_policy)]


def arm_draws(user_ids: np.ndarray, as_of: date, policies: list[str], cfg: Settings | None = None):
    """Per user: whether they fall in the challenger's arm, and whether they are held out."""
    cfg = cfg or settings()
    challenger = (
        salted_share(user_ids, as_of, "arm", cfg) < cfg.challenger_arm_share
        if len(policies) > 1
        else np.zeros(len(user_ids), bool)
    )
    return challenger, salted_share(user_ids, as_of, "holdout", cfg) < cfg.holdout_share


def arm_budgets(policies: list[str], cfg: Settings | None = None) -> dict[str, float]:
    cfg = cfg or settings()
    if len(policies) == 1:
        return {policies[0]: cfg.daily_coupon_budget}
    share = cfg.challenger_arm_share
    return {policies[0]: cfg.daily_coupon_budget * (1 - share), policies[1]: cfg.daily_coupon_budget * share}
