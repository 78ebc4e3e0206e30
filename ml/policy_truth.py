"""The targeting policies against the simulator's truth: what each would really have earned on a day.

For every scored as-of date, each policy spends the whole daily budget under the same rules (the same
eligible users: scored, consenting, outside the contact cap; at most one coupon each; no offer with an
estimated lift or margin at or below zero):

- `uplift`: the `coupon_uplift@champion` estimates (what the pipeline's learned policy does);
- `propensity`: the lifecycle and propensity rules with the catalogue's assumed uplift;
- `random`: a random coupon to random eligible users until the planned cost reaches the budget;
- `oracle`: the same allocation knowing each user's true effect and order value.

The outcome comes from `truth/coupon_effects` (ml.simulate.coupon_effect_truth): for the coupon a policy
picked, true lift = P(buy in 7 days | coupon) - P(buy | none), true margin = lift x true order value x
gross margin rate - P(buy | coupon) x the discount on the true order value. No model or feature reads it.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from ml.allocation import allocate, catalogue, discount, value_offers
from ml.config import settings
from ml.errors import ModelError

POLICY_ORDER = ("uplift", "propensity", "random", "oracle")


def load_truth(as_of: date) -> pd.DataFrame:
    path = settings().truth_dir / "coupon_effects" / f"as_of_date={as_of}" / "part-0.parquet"
    if not path.exists():
        raise ModelError(f"{path}: no coupon truth for {as_of}; the simulated shop does not cover that date")
    return pd.read_parquet(path).set_index("user_id")


def truth_offers(users: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Every coupon for every user, valued with the true effects (the oracle's view)."""
    known = truth.reindex(users["user_id"])
    frames = []
    for code in catalogue()["coupon_code"]:
        treated = known[f"p_buy_7d_{code}"].fillna(0).to_numpy(float)
        control = known["p_buy_7d_control"].fillna(0).to_numpy(float)
        frames.append(
            pd.DataFrame(
                {
                    "user_id": users["user_id"].to_numpy(),
                    "coupon_code": code,
                    "lift": treated - control,
                    "p_buy_with_coupon": treated,
                    "order_value": known["expected_order_value"].fillna(0).to_numpy(float),
                }
            )
        )
    return value_offers(pd.concat(frames, ignore_index=True))


def random_picks(users: pd.DataFrame, as_of: date, budget: float) -> pd.DataFrame:
    """Random eligible users, each with a random coupon, until the catalogue-planned cost fills the budget."""
    cat = catalogue()
    rng = np.random.default_rng([settings().seed, as_of.toordinal()])
    order = rng.permutation(len(users))
    codes = rng.choice(cat["coupon_code"].to_numpy(), len(users))
    picked = users.iloc[order][["user_id", "planned_order_value"]].assign(coupon_code=codes[order])
    rates = cat.set_index("coupon_code")["redemption_rate"]
    cost = rates.loc[picked["coupon_code"]].to_numpy() * discount(picked["planned_order_value"], picked["coupon_code"])
    return picked.assign(expected_cost=cost)[np.cumsum(cost) <= budget]


def true_effects(picks: pd.DataFrame, truth: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(true lift, true incremental margin) of each picked (user_id, coupon_code) pair; 0 for unknown users."""
    known = truth.reindex(picks["user_id"])
    codes = picks["coupon_code"].to_numpy()
    treated = np.zeros(len(picks))
    for code in np.unique(codes):
        mask = codes == code
        treated[mask] = known[f"p_buy_7d_{code}"].to_numpy(float)[mask]
    treated = np.nan_to_num(treated)
    control = known["p_buy_7d_control"].fillna(0).to_numpy(float)
    value = known["expected_order_value"].fillna(0).to_numpy(float)
    margin = (treated - control) * value * settings().gross_margin_rate - treated * discount(value, codes)
    return treated - control, margin


def true_outcome(picks: pd.DataFrame, truth: pd.DataFrame) -> dict[str, float]:
    """True incremental purchases and margin of the picked (user, coupon) pairs."""
    if picks.empty:
        return {"true_incremental_purchases": 0.0, "true_incremental_margin": 0.0}
    lift, margin = true_effects(picks, truth)
    return {
        "true_incremental_purchases": round(float(lift.sum()), 2),
        "true_incremental_margin": round(float(margin.sum()), 2),
    }


def evaluate_policies(as_of_dates: list[date] | None = None) -> list[dict[str, Any]]:
    """One line per policy and scored as-of date (default: every date in user_segments)."""
    from ml.data import connect_read_only, table_names
    from ml.targeting import load_eligible, load_uplift_effects, order_values, propensity_offers, uplift_offers

    cfg = settings()
    budget = cfg.daily_coupon_budget
    with connect_read_only() as con:
        tables = table_names(con)
        if "user_segments" not in tables:
            return []  # nothing scored and segmented yet: no policy has picked anyone
        scored = [r[0] for r in con.execute("select distinct as_of_date from user_segments order by 1").fetchall()]
        dates = [d for d in scored if as_of_dates is None or d in as_of_dates]
        eligible = {d: load_eligible(con, d) for d in dates}
    lines = []
    for as_of in dates:
        if eligible[as_of].empty:
            continue  # nobody could be targeted that day: every policy earns 0
        truth = load_truth(as_of)
        users = eligible[as_of].assign(planned_order_value=lambda f: order_values(f))
        picks = {
            "propensity": allocate(propensity_offers(users), budget),
            "random": random_picks(users, as_of, budget),
            "oracle": allocate(truth_offers(users, truth), budget),
        }
        uplift = load_uplift_effects(users)
        if uplift is not None:
            picks["uplift"] = allocate(uplift_offers(users, uplift[0]), budget)
        results = {name: true_outcome(chosen, truth) for name, chosen in picks.items()}
        oracle_margin = results["oracle"]["true_incremental_margin"]
        for name in POLICY_ORDER:
            if name not in picks:
                continue
            line = {
                "policy": name,
                "as_of_date": str(as_of),
                "budget": budget,
                "spend": round(float(picks[name]["expected_cost"].sum()), 2),
                "n_targeted": int(len(picks[name])),
                **results[name],
            }
            if name in ("uplift", "propensity"):
                share = results[name]["true_incremental_margin"] / oracle_margin if oracle_margin > 0 else None
                line["share_of_oracle"] = None if share is None else round(share, 4)
            lines.append(line)
    return lines
