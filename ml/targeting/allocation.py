"""Spending a coupon budget: the value of each offer and the budgeted choice of at most one coupon per user.

An offer of coupon c to user u is worth, in expected incremental margin:

    margin = lift x order value x gross margin rate  -  P(buy with the coupon) x discount(order value)

where lift = P(buy in the coupon window | coupon) - P(buy | no coupon). The discount is paid on every
redeemed order, including those of customers who would have bought anyway: that is why a coupon to a sure
thing loses money. The expected cost of the offer, what the daily budget caps, is that same
P(buy with the coupon) x discount.

`allocate` solves the multiple-choice knapsack greedily (Sinha & Zoltners 1979): per user, the offers on
the upper convex hull of (cost, margin) become incremental upgrades; all upgrades are taken in order of
incremental margin per euro while the budget lasts. Offers with a lift or margin at or below zero are
never funded. Every policy (the learned one, the propensity rules, random and the oracle) goes through
this same function, so they differ only in their estimates.

The greedy looks only at the best upgrades, of those that could fit the budget at all, whose costs add up to
FUNDING_REACH x the budget (`funding_cutoff`): the budget runs out inside them, and its last euros are filled
from them too, not from cheap offers of low value ranked further down (what is left unspent is less than one
offer's cost either way). That bound lets a large shop plan its send list from the few users who could be
funded (ml.targeting.spark_candidates) and get the rows planning on every user gives.
"""

from __future__ import annotations

from datetime import date
from functools import cache

import numpy as np
import pandas as pd

from ml.config import settings

OFFER_COLUMNS = ["user_id", "coupon_code", "lift", "p_buy_with_coupon", "order_value"]
FUNDING_REACH = 2.0  # the greedy reads the best upgrades worth this many budgets (twice what it can spend)


@cache
def _catalogue_file(path: str) -> pd.DataFrame:
    return pd.read_csv(path)


def catalogue() -> pd.DataFrame:
    """The coupon catalogue seed (the same file dbt loads as `coupon_catalogue`)."""
    return _catalogue_file(str(settings().dbt_project_dir / "seeds" / "coupon_catalogue.csv")).copy()


def discount(order_value: np.ndarray, coupon_codes: np.ndarray, cat: pd.DataFrame | None = None) -> np.ndarray:
    """What a redeemed coupon costs on an order of that value (percent, fixed EUR or free shipping)."""
    table = (catalogue() if cat is None else cat).set_index("coupon_code")
    kind = table.loc[coupon_codes, "discount_type"].to_numpy()
    value = table.loc[coupon_codes, "discount_value"].to_numpy(dtype=float)
    return np.where(kind == "percent", np.asarray(order_value, float) * value / 100, value)


def value_offers(
    offers: pd.DataFrame, margin_rate: float | None = None, cat: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Add `expected_cost` and `expected_margin` to offers with OFFER_COLUMNS (`cat`: the catalogue, where the
    settings are not at hand, as in Spark's executors)."""
    margin_rate = settings().gross_margin_rate if margin_rate is None else margin_rate
    out = offers.copy()
    codes = out["coupon_code"].to_numpy()
    cost = out["p_buy_with_coupon"].to_numpy(float) * discount(out["order_value"], codes, cat)
    out["expected_cost"] = cost
    out["expected_margin"] = out["lift"].to_numpy(float) * out["order_value"].to_numpy(float) * margin_rate - cost
    return out


def _upgrades(offers: pd.DataFrame) -> pd.DataFrame:
    """Per user, the convex-hull upgrades from nothing to better offers: (user, step, offer row, dcost, dmargin)."""
    ordered = offers.sort_values(["user_id", "expected_cost", "expected_margin"], ascending=[True, True, False])
    users = ordered["user_id"].to_numpy()
    costs = ordered["expected_cost"].to_numpy(float)
    margins = ordered["expected_margin"].to_numpy(float)
    indexes = ordered.index.to_numpy()
    rows = []
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    for start, end in zip(starts, np.r_[starts[1:], len(users)], strict=True):
        hull: list[tuple[float, float, int]] = [(0.0, 0.0, -1)]
        for i in range(start, end):
            cost, margin = costs[i], margins[i]
            if margin <= hull[-1][1]:
                continue  # costs at least as much as a better offer: dominated
            # Drop points under the line from the previous hull point to this one (LP-dominated).
            while len(hull) >= 2:
                (c0, m0, _), (c1, m1, _) = hull[-2], hull[-1]
                if (m1 - m0) * (cost - c0) <= (margin - m0) * (c1 - c0):
                    hull.pop()
                else:
                    break
            hull.append((cost, margin, indexes[i]))
        for step, ((c0, m0, _), (c1, m1, index)) in enumerate(zip(hull, hull[1:], strict=False)):
            rows.append((users[start], step, index, c1 - c0, m1 - m0))
    return pd.DataFrame(rows, columns=["user_id", "step", "offer_index", "delta_cost", "delta_margin"])


def upgrade_steps(offers: pd.DataFrame) -> pd.DataFrame:
    """The fundable offers' upgrades (`_upgrades`) with their margin per euro, in the order the greedy funds them."""
    fundable = offers[(offers["lift"] > 0) & (offers["expected_margin"] > 0)]
    steps = _upgrades(fundable)
    # Free upgrades first, then by margin per euro; ties by user id so a rerun picks the same users.
    efficiency = np.where(
        steps["delta_cost"] > 0, steps["delta_margin"] / steps["delta_cost"].clip(lower=1e-12), np.inf
    )
    return steps.assign(efficiency=efficiency).sort_values(
        ["efficiency", "user_id", "step"], ascending=[False, True, True], kind="stable"
    )


def funding_cutoff(steps: pd.DataFrame, budget: float, slack: float = 0.0) -> float:
    """The margin per euro of the upgrade at which the best `steps` (in funding order) that could fit the budget
    at all cost FUNDING_REACH x `budget`; -inf where they never do, inf for no budget. Only upgrades at or above
    it are ever funded: the greedy meets its first upgrade that does not fit before that point. A relative
    `slack` can only lower the cutoff (a cost near the budget not counted, a slightly longer reach): what a
    reader of values a few bits off uses to pick a superset of the users."""
    if budget <= 0:
        return float("inf")
    cost = steps["delta_cost"].to_numpy(float)
    counted = np.where(cost <= budget * (1 - slack), cost, 0.0)
    reached = np.flatnonzero(np.cumsum(counted) >= FUNDING_REACH * budget * (1 + slack))
    return float(steps["efficiency"].iloc[reached[0]]) if len(reached) else float("-inf")


def allocate(offers: pd.DataFrame, budget: float, ahead_of: tuple[float, int, int] | None = None) -> pd.DataFrame:
    """Choose at most one offer per user within `budget` (sum of expected_cost); rows of `offers`, ranked.

    `offers` needs user_id, coupon_code, lift, expected_cost and expected_margin. The result keeps the
    offer's columns and adds `priority_rank` (1 = funded first) in the order users were funded; its
    `attrs["first_unfunded"]` is the rank key (margin per euro, user id, step) of the first upgrade the
    budget could not fund, None when the budget was not the limit. Every upgrade ranked ahead of it was
    funded; `ahead_of` (with an unlimited budget) takes exactly those of these offers: whom that
    allocation would have funded, had they been among its users.
    """
    steps = upgrade_steps(offers)
    if steps.empty or budget <= 0:
        empty = offers.iloc[0:0].assign(priority_rank=pd.Series(dtype="int64"))
        empty.attrs["first_unfunded"] = None
        return empty
    if np.isfinite(budget):
        steps = steps[steps["efficiency"].to_numpy() >= funding_cutoff(steps, budget)]
    if ahead_of is not None:
        rate, user, step = ahead_of
        eff, ids = steps["efficiency"], steps["user_id"]
        steps = steps[(eff > rate) | ((eff == rate) & ((ids < user) | ((ids == user) & (steps["step"] < step))))]
    remaining = float(budget)
    first_unfunded = None
    chosen: dict[int, int] = {}
    first_funded: dict[int, int] = {}
    closed: set[int] = set()
    expected_step: dict[int, int] = {}
    for user_id, step, index, delta_cost, efficiency in zip(
        steps["user_id"], steps["step"], steps["offer_index"], steps["delta_cost"], steps["efficiency"], strict=True
    ):
        if user_id in closed or expected_step.get(user_id, 0) != step:
            closed.add(user_id)
            continue
        if delta_cost > remaining + 1e-9:
            closed.add(user_id)  # this upgrade does not fit; later, cheaper upgrades of others still may
            if first_unfunded is None:
                first_unfunded = (float(efficiency), int(user_id), int(step))
            continue
        remaining -= delta_cost
        chosen[user_id] = index
        first_funded.setdefault(user_id, len(first_funded) + 1)
        expected_step[user_id] = step + 1
    picked = offers.loc[list(chosen.values())].copy()
    picked["priority_rank"] = picked["user_id"].map(first_funded).astype("int64")
    picked = picked.sort_values("priority_rank").reset_index(drop=True)
    picked.attrs["first_unfunded"] = first_unfunded
    return picked


def allocate_with_holdout(
    offers: pd.DataFrame, is_holdout: np.ndarray, budget: float
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Allocate `budget` to the users not held out; pick the held-out users that allocation would have funded.

    The holdout takes every upgrade ranked ahead of the first one the treated budget could not fund, so
    it is a random sample of the users the policy funds by its rule. The treated also get the cheap
    offers within the funding reach that still fit the budget's last euros after that point; the holdout
    does not mirror those (they are a few, and a rate taken from them would let the holdout outnumber the
    treated at a large shop). With no budget nobody is treated and nobody held out. `is_holdout` is per row
    of `offers`, constant per user.
    """
    is_holdout = np.asarray(is_holdout, bool)
    if budget <= 0:
        nobody = allocate(offers.iloc[0:0], 0.0)
        return nobody, nobody.copy()
    treated = allocate(offers[~is_holdout], budget)
    first_unfunded = treated.attrs["first_unfunded"]
    holdout = allocate(offers[is_holdout], float("inf"), ahead_of=first_unfunded)
    return treated, holdout


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
