"""The targeting policies against the simulator's truth: what each would really have earned on a day.

For every scored as-of date, each policy spends the whole daily budget under the same rules (the same
eligible users: scored, consenting, outside the contact cap; at most one coupon each; no offer with an
estimated lift or margin at or below zero):

- `uplift`: the `coupon_uplift@champion` estimates (what the pipeline's learned policy does);
- `propensity`: the lifecycle and propensity rules with the catalogue's assumed uplift;
- `random`: a random coupon to random eligible users until the planned cost reaches the budget;
- `oracle`: the same allocation knowing each user's true effect and order value;
- `informed`: the same allocation knowing every hidden trait but the coupon segment (and its effect
  draw): each coupon valued at its expected true effect over the segment's odds given price
  sensitivity. Behaviour shows the traits at best, never the segment drawn from them, so this is about
  the most a model of the shop's data can earn: `share_of_informed` says how much of it the learned
  policy gets (what the oracle earns beyond it is the segment draw, which no data shows).

The outcome comes from `truth/coupon_effects` (ml.sim.behaviour.coupon_effect_truth): for the coupon a policy
picked, true lift = P(buy in 7 days | coupon) - P(buy | none), true margin = lift x true order value x
gross margin rate - P(buy | coupon) x the discount on the true order value. No model or feature reads it.

The daily lines value every policy on the pool the pipeline's own send lists left. After the first day that
is the users the leading policy's send did not reach, so the oracle's later days collect what that policy
ranked too low. Over two or more days, `own_history` adds one line per policy run over the days on its own:
each day's pool leaves out the users that policy itself picked within the contact cap.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd

from ml.config import settings
from ml.errors import ModelError
from ml.sim.behaviour import Hidden, coupon_effect_columns
from ml.sim.shop import (
    CAMPAIGN_COUPONS,
    COUPON_EFFECT_RANGES,
    SEGMENTS,
    ShopSpec,
    coupon_strengths,
    segment_probabilities,
)
from ml.targeting.allocation import allocate, catalogue, discount, random_picks, value_offers

POLICY_ORDER = ("uplift", "propensity", "random", "oracle", "informed")
# The informed policy averages over a segment's uniform effect draw with the midpoint rule at this many points.
QUADRATURE_POINTS = 5


def load_truth(as_of: date) -> pd.DataFrame:
    path = settings().truth_dir / "coupon_effects" / f"as_of_date={as_of}" / "part-0.parquet"
    if not path.exists():
        raise ModelError(f"{path}: no coupon truth for {as_of}; the simulated shop does not cover that date")
    return pd.read_parquet(path).set_index("user_id")


def truth_offers(users: pd.DataFrame, truth: pd.DataFrame, lift: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every coupon for every user, valued with the true effects (the oracle's view).

    With `lift` (per user_id, a column per code) the coupons' lifts are those instead: the true control
    probability and order value stay (the informed view).
    """
    known = truth.reindex(users["user_id"])
    frames = []
    for code in catalogue()["coupon_code"]:
        control = known["p_buy_7d_control"].fillna(0).to_numpy(float)
        if lift is None:
            treated = known[f"p_buy_7d_{code}"].fillna(0).to_numpy(float)
        else:
            treated = control + lift[code].reindex(users["user_id"]).fillna(0).to_numpy(float)
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


def load_hidden_shop() -> tuple[ShopSpec, pd.DataFrame]:
    """The simulated shop's spec and hidden user traits: what the informed policy knows (with the truth)."""
    cfg = settings()
    spec_file, traits_file = cfg.inbox_dir / "shop_spec.json", cfg.truth_dir / "user_traits.parquet"
    for path in (spec_file, traits_file):
        if not path.exists():
            raise ModelError(f"{path}: missing; the informed policy needs the simulated shop's spec and traits")
    return ShopSpec.from_json(spec_file.read_text()), pd.read_parquet(traits_file)


def informed_lift(
    user_ids: np.ndarray, truth: pd.DataFrame, as_of: date, spec: ShopSpec, traits: pd.DataFrame
) -> pd.DataFrame:
    """Each user's expected true lift of each code (a column per code) when all but the coupon segment is known.

    The segment is what no data shows, only its odds given price sensitivity (which behaviour does show):
    the lift is averaged over those odds and, within a responsive segment, over its uniform effect draw.
    Each P(buy | coupon) is the simulator's own arithmetic with the effect set to a quadrature point, and
    the alive state is the truth's, so only the segment differs from the oracle's view.
    """
    day_index = (as_of - spec.start).days
    # Users not signed up by as_of have no truth row (and lift 0): coupon_effect_columns drops them too.
    known = traits[traits["user_id"].isin(user_ids) & (traits["signup_day"] <= day_index)]
    hidden = Hidden.of(known)  # the order value is the truth's
    alive = truth["is_alive"].reindex(known["user_id"]).fillna(False).to_numpy(bool)
    odds = segment_probabilities(known["price_sensitivity"].to_numpy())
    codes = list(CAMPAIGN_COUPONS)
    lift = np.zeros((len(known), len(codes)))
    midpoints = (np.arange(QUADRATURE_POINTS) + 0.5) / QUADRATURE_POINTS
    for segment, (low, high) in COUPON_EFFECT_RANGES.items():
        # One point for a fixed effect; a shop without coupon effects has 1.0 (and strength 1) for all.
        effects = np.unique(low + (high - low) * midpoints) if spec.coupon_effects else np.ones(1)
        weight = odds[:, SEGMENTS.index(segment)] / len(effects)
        for effect in effects:
            draw = replace(hidden, coupon_effect=np.full(len(known), effect))
            p_buy = coupon_effect_columns(draw, alive, as_of, day_index, coupon_strengths(spec))
            for i, code in enumerate(codes):
                lift[:, i] += weight * (p_buy[f"p_buy_7d_{code}"] - p_buy["p_buy_7d_control"])
    return pd.DataFrame(lift, index=known["user_id"].to_numpy(), columns=codes)


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


def _share(margin: float, of: float) -> float | None:
    """margin / of, None when the reference earns nothing (no share of it to speak of)."""
    return round(margin / of, 4) if of > 0 else None


def evaluate_policies(as_of_dates: list[date] | None = None) -> list[dict[str, Any]]:
    """One line per policy and scored as-of date (default: every date in user_segments), then the own-history lines."""
    from ml.targeting.offers import load_uplift_model
    from ml.targeting.plan import load_eligible
    from ml.warehouse.read import connect_read_only, table_names

    budget = settings().daily_coupon_budget
    with connect_read_only() as con:
        tables = table_names(con)
        if "user_segments" not in tables:
            return []  # nothing scored and segmented yet: no policy has picked anyone
        scored = [r[0] for r in con.execute("select distinct as_of_date from user_segments order by 1").fetchall()]
        dates = [d for d in scored if as_of_dates is None or d in as_of_dates]
        eligible = {d: load_eligible(con, d) for d in dates}
        own_pools = {d: load_eligible(con, d, with_targets=False) for d in dates} if len(dates) > 1 else {}
    hidden_shop, uplift_model = None, None
    lines = []
    for as_of in dates:
        if eligible[as_of].empty:
            continue  # nobody could be targeted that day: every policy earns 0
        truth = load_truth(as_of)
        if hidden_shop is None:
            hidden_shop = load_hidden_shop()  # once, and only when a day has users to value
            uplift_model = load_uplift_model(list(eligible[as_of].columns))  # None without a champion
        known = (hidden_shop, uplift_model)
        users = _priced(eligible[as_of])
        picks = {name: pick(name, users, as_of, truth, budget, known) for name in POLICY_ORDER}
        picks = {name: chosen for name, chosen in picks.items() if chosen is not None}
        results = {name: true_outcome(chosen, truth) for name, chosen in picks.items()}
        margin = {name: result["true_incremental_margin"] for name, result in results.items()}
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
                line["share_of_oracle"] = _share(margin[name], margin["oracle"])
                # What the policy believed its picks would earn, next to what they did.
                line["expected_incremental_margin"] = round(float(picks[name]["expected_margin"].sum()), 2)
            if name == "uplift":
                line["share_of_informed"] = _share(margin[name], margin["informed"])
            lines.append(line)
    if own_pools and hidden_shop is not None:
        lines.extend(own_history(own_pools, budget, (hidden_shop, uplift_model)))
    return lines


def _priced(users: pd.DataFrame) -> pd.DataFrame:
    from ml.targeting.offers import order_values

    return users.assign(planned_order_value=lambda f: order_values(f))


def pick(name: str, users: pd.DataFrame, as_of: date, truth: pd.DataFrame, budget: float, known: tuple):
    """Whom policy `name` sends which coupon among `users` on `as_of`; `known`: (the hidden shop, the coupon_uplift
    champion loaded once, or None: then the uplift policy picks None)."""
    from ml.targeting.offers import propensity_offers, uplift_effects, uplift_offers

    hidden_shop, uplift_model = known
    if name == "uplift":
        return (
            None
            if uplift_model is None
            else allocate(uplift_offers(users, uplift_effects(uplift_model, users)), budget)
        )
    if name == "propensity":
        return allocate(propensity_offers(users), budget)
    if name == "random":
        return random_picks(users, as_of, budget)
    if name == "oracle":
        return allocate(truth_offers(users, truth), budget)
    if name == "informed":
        informed = informed_lift(users["user_id"].to_numpy(), truth, as_of, *hidden_shop)
        return allocate(truth_offers(users, truth, informed), budget)
    raise ValueError(f"unknown policy {name!r}; choose one of {', '.join(POLICY_ORDER)}")


def own_history(pools: dict[date, pd.DataFrame], budget: float, known: tuple) -> list[dict[str, Any]]:
    """Each policy run over the days on its own: a day's pool is `pools` (the shop's campaign contacts left out)
    less the users the policy itself picked within the contact cap. One line per policy, summed over the days."""
    cap = timedelta(days=settings().contact_cap_days)
    dates = sorted(pools)
    names = [name for name in POLICY_ORDER if name != "random"]
    picked: dict[str, list[tuple[date, set]]] = {name: [] for name in names}
    margin: dict[str, float] = dict.fromkeys(names, 0.0)
    for as_of in dates:
        if pools[as_of].empty:
            continue  # nobody could be targeted that day, whatever was sent before
        truth = load_truth(as_of)
        for name in list(margin):
            recent = set().union(*(ids for day, ids in picked[name] if as_of - cap <= day < as_of))
            users = _priced(pools[as_of][~pools[as_of]["user_id"].isin(recent)].reset_index(drop=True))
            chosen = pick(name, users, as_of, truth, budget, known) if len(users) else users.iloc[:0]
            if chosen is None:
                del margin[name]  # no coupon effect model: the uplift policy cannot run
                continue
            picked[name].append((as_of, set(chosen["user_id"])))
            margin[name] += true_outcome(chosen, truth)["true_incremental_margin"]
    over = f"{dates[0]}..{dates[-1]}"
    return [
        {
            "policy": name,
            "own_history": over,
            "true_incremental_margin": round(value, 2),
            **({"share_of_oracle": _share(value, margin["oracle"])} if name in ("uplift", "propensity") else {}),
            **({"share_of_informed": _share(value, margin["informed"])} if name == "uplift" else {}),
        }
        for name, value in margin.items()
    ]
