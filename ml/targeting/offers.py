"""What each targeting policy offers each user: the candidate (user, coupon) offers with their estimates.

- `uplift`: every catalogue coupon the coupon_uplift model knows, valued with its P(buy in 7 days) and lift;
- `propensity`: the rules that came before (lifecycle segment and propensity decile choose one coupon; its
  value is the catalogue's assumed uplift, weighted by churn risk; cost from the redemption rate).

The coupon effect model is loaded and applied here too (`load_uplift_model`, `uplift_effects`), by the driver
or, on Spark, by the executors. ml.targeting.allocation values and allocates the offers under the budget;
the send list (ml.targeting.plan), the off-policy evaluation (ml.targeting.campaign_evaluation) and the
check against the simulator's truth (ml.sim.policy_truth) all build their offers here, so a policy means the
same thing everywhere.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ml.errors import ModelError
from ml.propensity.datasets import model_inputs
from ml.targeting.allocation import catalogue, value_offers


def order_value_fallback(users: pd.DataFrame) -> float:
    """What a new buyer's order is taken to be worth: the median of the known average order values."""
    known = users["avg_order_value_lifetime"]
    return float(known.median()) if known.notna().any() else 50.0


def order_values(users: pd.DataFrame, fallback: float | None = None) -> pd.Series:
    """What an order of each user is worth: their average order value, or (new buyers) `fallback`, by default
    the median over `users` (`order_value_fallback`)."""
    fallback = order_value_fallback(users) if fallback is None else fallback
    return users["avg_order_value_lifetime"].fillna(fallback).astype(float)


def uplift_offers(
    users: pd.DataFrame, effects: pd.DataFrame, cat: pd.DataFrame | None = None, margin_rate: float | None = None
) -> pd.DataFrame:
    """Every catalogue coupon the model knows, for every user, with the model's estimates (`cat` and
    `margin_rate` where the settings are not at hand: ml.targeting.allocation.value_offers)."""
    cat = catalogue() if cat is None else cat
    by_code = cat.set_index("coupon_code")
    value = users["planned_order_value"]
    frames = []
    for code in by_code.index:
        column = f"lift_{code}"
        if column not in effects:
            continue
        lift = effects.loc[users.index, column].to_numpy(float)
        frames.append(
            pd.DataFrame(
                {
                    "user_id": users["user_id"].to_numpy(),
                    "coupon_code": code,
                    "lift": lift,
                    "p_buy_with_coupon": effects.loc[users.index, "p_buy_7d_control"].to_numpy(float) + lift,
                    "order_value": np.maximum(value.to_numpy(), by_code.loc[code, "min_order_value"]),
                }
            )
        )
    if not frames:
        raise ModelError("the coupon_uplift champion knows none of the catalogue's coupons")
    return value_offers(pd.concat(frames, ignore_index=True), margin_rate, cat)


def propensity_rule(users: pd.DataFrame) -> pd.Series:
    """The coupon type the propensity rules give each user (None: no coupon)."""
    lapsed = users["lifecycle_segment"].isin(["at_risk", "hibernating", "lost"])
    decile = users["propensity_decile"].fillna(0)
    conditions = [
        lapsed & (decile >= 4) & users["days_since_last_activity"].notna(),
        users["lifecycle_segment"] == "new",
        users["lifecycle_segment"] == "loyal",
        (users["lifecycle_segment"] == "active") & decile.between(4, 8),
    ]
    return pd.Series(np.select(conditions, ["winback", "welcome", "loyalty", "nudge"], None), index=users.index)


def propensity_offers(
    users: pd.DataFrame, cat: pd.DataFrame | None = None, margin_rate: float | None = None
) -> pd.DataFrame:
    """One offer per user by the rules, valued with the catalogue's assumed uplift (weighted by churn risk)."""
    cat = catalogue() if cat is None else cat
    chosen = users.assign(coupon_type=propensity_rule(users)).dropna(subset=["coupon_type"])
    chosen = chosen.merge(cat, on="coupon_type")
    # A lapsed user has no churn score: they count as churned (weight 2), as the rules always did.
    weight = 1 + chosen["p_churn_30d"].fillna(1.0).to_numpy(float)
    offers = pd.DataFrame(
        {
            "user_id": chosen["user_id"].to_numpy(),
            "coupon_code": chosen["coupon_code"].to_numpy(),
            "lift": chosen["assumed_uplift"].to_numpy(float) * weight,
            "p_buy_with_coupon": chosen["redemption_rate"].to_numpy(float),
            "order_value": np.maximum(
                chosen["planned_order_value"].to_numpy(), chosen["min_order_value"].to_numpy(float)
            ),
        }
    )
    return value_offers(offers, margin_rate, cat)


def policy_offers(
    users: pd.DataFrame,
    policy: str,
    uplift: tuple[pd.DataFrame, str] | None,
    cat: pd.DataFrame | None = None,
    margin_rate: float | None = None,
) -> pd.DataFrame:
    """The offers `policy` makes to `users`, with the coupon effect model version behind them (`uplift`: the
    effect table on the users' index and that version, for the uplift policy)."""
    if policy == "uplift":
        effects, version = uplift
        return uplift_offers(users, effects, cat, margin_rate).assign(uplift_model_version=version)
    return propensity_offers(users, cat, margin_rate).assign(uplift_model_version=None)


def load_uplift_model(columns: list[str], version: str | None = None) -> tuple[Any, str, list[str]] | None:
    """The coupon effect model `version` (default: the champion) with its inputs, checked against the `columns`
    the eligible users have; None without a champion."""
    from ml.registry.aliases import UPLIFT_MODEL, champion_version, load_version

    if version is None and champion_version(UPLIFT_MODEL) is None:
        return None
    model, version = load_version(UPLIFT_MODEL, version)
    inputs = [c.name for c in model.metadata.get_input_schema().inputs]
    missing = [c for c in inputs if c not in columns]
    if missing:
        raise ModelError(
            f"{UPLIFT_MODEL}@champion v{version} expects features user_features lacks: {', '.join(missing)}. "
            "Retrain (python -m ml train) or roll it back; no targets were written."
        )
    return model, version, inputs


def uplift_effects(model: tuple[Any, str, list[str]], users: pd.DataFrame) -> pd.DataFrame:
    """The model's coupon effect table for these users, on their index."""
    effects = model[0].predict(model_inputs(users, model[2]))
    effects.index = users.index
    return effects


def load_uplift_effects(users: pd.DataFrame, version: str | None = None) -> tuple[pd.DataFrame, str] | None:
    """The coupon effect table for these users from `version` (default: the champion); None without a champion."""
    model = load_uplift_model(list(users.columns), version)
    return None if model is None else (uplift_effects(model, users), model[1])


def pinned_uplift_model(pinned: dict, columns: list[str], n_eligible: int):
    """(the day's coupon effect model or None, why it is unavailable or None): the day's pinned version, else
    the champion. The rules still target without it; the day's result says why."""
    if not n_eligible or pinned.get("uplift_model_version", "") is None:
        return None, None
    try:
        return load_uplift_model(columns, pinned.get("uplift_model_version")), None
    except ModelError as exc:
        return None, str(exc)
