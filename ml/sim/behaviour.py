"""How the synthetic shoppers behave: visits over the calendar, true purchase and churn probabilities, order values.

And the true effect of each coupon on each user, which only the truth files and the evaluations read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd

from ml.config import LABEL_HORIZON_DAYS
from ml.sim.shop import CAMPAIGN_COUPONS, CATEGORIES, COUPON_VALID_DAYS, UPLIFT_HORIZON_DAYS, WEEKDAY_FACTOR

# A buying session's basket (see simulate_day): 1 + Poisson(2.5 + 25 * intent) views, the last one
# always carted and each other one with probability 1/2; every carted line is bought in quantity 1
# (p 0.7) or 1 + U{1, 2, 3} capped at 3, i.e. 2 (p 0.1) or 3 (p 0.2).
BASE_EXTRA_VIEWS, EXTRA_VIEWS_PER_INTENT = 2.5, 25.0
BUYING_CART_RATE = 0.5
MEAN_QUANTITY = 0.7 * 1 + 0.3 * (2 + 3 + 3) / 3  # 1.5


def promo_factor(day: date) -> float:
    """Site-wide promotions: three days every four weeks lift purchase odds."""
    return 1.4 if day.toordinal() % 28 < 3 else 1.0


def calendar_rates(day: date) -> tuple[float, float]:
    """(visit multiplier, purchase multiplier) for a calendar day."""
    promo = promo_factor(day)
    return WEEKDAY_FACTOR[day.weekday()] * (1.1 if promo > 1 else 1.0), promo


def visit_rates(traits: pd.DataFrame, day_index: int) -> np.ndarray:
    """Each user's expected sessions per day on `day_index` (before calendar effects)."""
    tenure = np.maximum(day_index - traits["signup_day"].to_numpy(), 0)
    return traits["visit_rate"].to_numpy() * np.exp(-traits["engagement_decay"].to_numpy() * tenure)


@dataclass(frozen=True)
class Hidden:
    """The hidden traits the daily truth reads, as arrays: pandas look-ups in the day loops cost more."""

    user_id: np.ndarray
    signup_day: np.ndarray
    visit_rate: np.ndarray
    engagement_decay: np.ndarray
    intent: np.ndarray
    hazard: np.ndarray
    coupon_effect: np.ndarray
    order_value: np.ndarray

    @classmethod
    def of(cls, traits: pd.DataFrame, products: pd.DataFrame | None = None) -> Hidden:
        return cls(
            user_id=traits["user_id"].to_numpy(),
            signup_day=traits["signup_day"].to_numpy(),
            visit_rate=traits["visit_rate"].to_numpy(),
            engagement_decay=traits["engagement_decay"].to_numpy(),
            intent=traits["purchase_intent"].to_numpy(),
            hazard=traits["churn_hazard"].to_numpy(),
            coupon_effect=traits["coupon_effect"].to_numpy(),
            order_value=np.full(len(traits), np.nan) if products is None else expected_order_value(traits, products),
        )

    def visit_rates(self, day_index: int) -> np.ndarray:
        """Same as visit_rates(traits, day_index)."""
        tenure = np.maximum(day_index - self.signup_day, 0)
        return self.visit_rate * np.exp(-self.engagement_decay * tenure)


def true_probabilities(traits: pd.DataFrame | Hidden, alive: np.ndarray, as_of: date, day_index: int) -> pd.DataFrame:
    """Each user's true P(purchase in [T, T+30)) and P(no visit in [T, T+30)) given the hidden state.

    Exact for the organic process (a user alive at T may churn each day before visiting); the effect of
    coupons that are sent later is left out, so this is the best score a model without them could reach.
    """
    hidden = traits if isinstance(traits, Hidden) else Hidden.of(traits)
    intent, hazard = hidden.intent, hidden.hazard
    alive_no_buy = alive.astype(float)
    gone_no_buy = np.zeros(len(intent))
    alive_no_visit = alive.astype(float)
    gone_no_visit = 1.0 - alive.astype(float)
    for offset in range(LABEL_HORIZON_DAYS):
        visit_mult, buy_mult = calendar_rates(as_of + timedelta(days=offset))
        rate = hidden.visit_rates(day_index + offset)
        gone_no_buy += alive_no_buy * hazard
        alive_no_buy *= (1 - hazard) * np.exp(-rate * visit_mult * np.minimum(intent * buy_mult, 0.95))
        gone_no_visit += alive_no_visit * hazard
        alive_no_visit *= (1 - hazard) * np.exp(-rate * visit_mult)
    p_no_buy = alive_no_buy + gone_no_buy + (1.0 - alive)  # churned users never buy again
    return pd.DataFrame(
        {
            "user_id": hidden.user_id,
            "is_alive": alive,
            "p_purchase_30d": 1.0 - p_no_buy,
            "p_no_visit_30d": alive_no_visit + gone_no_visit,
        }
    )


def expected_order_value(traits: pd.DataFrame, products: pd.DataFrame) -> np.ndarray:
    """Each user's true expected order value: E[lines] x E[quantity] x E[price of a viewed product].

    From simulate_day's basket: a buying session has 1 + Poisson(2.5 + 25 x intent) views and carts
    the last one and each other one with probability 1/2 (so 1 + (2.5 + 25 x intent) / 2 lines on
    average), a view's category follows the user's tastes and its product is uniform within the
    category, and a line's quantity has mean 1.5. None of this depends on whether the session buys or
    holds a coupon, so it is also the value of an order a coupon brings.
    """
    category_price = products.groupby("category")["price"].mean().reindex(CATEGORIES).fillna(0.0).to_numpy()
    price = traits[[f"taste_{c}" for c in CATEGORIES]].to_numpy() @ category_price
    intent = traits["purchase_intent"].to_numpy()
    lines = 1 + BUYING_CART_RATE * (BASE_EXTRA_VIEWS + EXTRA_VIEWS_PER_INTENT * intent)
    return lines * MEAN_QUANTITY * price


def coupon_effect_truth(
    traits: pd.DataFrame,
    products: pd.DataFrame,
    alive: np.ndarray,
    as_of: date,
    day_index: int,
    strengths: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """For users signed up by `as_of`: P(a purchase on as_of .. as_of + 6) without and with each coupon.

    `p_buy_7d_control` has no coupon at all (one the user may still hold from a campaign is left out);
    `p_buy_7d_<CODE>` has that code delivered the morning of as_of, valid COUPON_VALID_DAYS days, which
    multiplies each session's purchase probability by coupon_effect x the code's strength (under the
    0.95 cap). Exact for the organic process like true_probabilities: calendar effects, tenure decay and
    the daily churn draw before any visit; a churned user has 0. A coupon is spent by the first purchase,
    which does not change P(at least one purchase). Campaign coupons sent later are left out.
    `strengths` defaults to CAMPAIGN_COUPONS (simulate passes coupon_strengths(spec), all 1 in a shop
    without coupon effects). `expected_order_value` is per order (buying session), coupon or not.
    """
    strengths = CAMPAIGN_COUPONS if strengths is None else strengths
    return pd.DataFrame(coupon_effect_columns(Hidden.of(traits, products), alive, as_of, day_index, strengths))


def coupon_effect_columns(
    hidden: Hidden, alive: np.ndarray, as_of: date, day_index: int, strengths: Mapping[str, float]
) -> dict[str, np.ndarray]:
    codes = list(CAMPAIGN_COUPONS)
    signed_up = hidden.signup_day <= day_index
    alive = np.asarray(alive, bool)[signed_up]
    intent = hidden.intent[signed_up][:, None]
    hazard = hidden.hazard[signed_up][:, None]
    effect = hidden.coupon_effect[signed_up]
    # Column 0 is the control arm; every column goes through the same arithmetic, so a multiplier of
    # exactly 1 gives exactly the control probability.
    coupon_mult = np.column_stack([np.ones(len(effect))] + [effect * strengths[code] for code in codes])
    survive = np.repeat(alive.astype(float)[:, None], 1 + len(codes), axis=1)
    p_buy = np.zeros_like(survive)
    for offset in range(UPLIFT_HORIZON_DAYS):
        visit_mult, buy_mult = calendar_rates(as_of + timedelta(days=offset))
        sessions = (hidden.visit_rates(day_index + offset)[signed_up] * visit_mult)[:, None]
        mult = coupon_mult if offset < COUPON_VALID_DAYS else coupon_mult[:, :1]
        survive *= 1 - hazard  # the day's churn draw comes before its visits
        no_buy = np.exp(-sessions * np.minimum(intent * buy_mult * mult, 0.95))
        p_buy += survive * (1 - no_buy)
        survive *= no_buy
    columns = {"user_id": hidden.user_id[signed_up], "is_alive": alive, "p_buy_7d_control": p_buy[:, 0]}
    columns |= {f"p_buy_7d_{code}": p_buy[:, i] for i, code in enumerate(codes, start=1)}
    columns["expected_order_value"] = hidden.order_value[signed_up]
    return columns
