"""The synthetic shop's make-up: products, users and their hidden traits, and the coupon segments."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from datetime import date, datetime, time, timedelta

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)


CATEGORIES = ["electronics", "fashion", "home", "beauty", "sports", "books", "toys", "grocery"]


CATEGORY_PRICE = [180.0, 45.0, 60.0, 25.0, 55.0, 15.0, 30.0, 12.0]


COUNTRIES = (["DE", "FR", "ES", "IT", "NL", "PL", "SE"], [0.26, 0.2, 0.13, 0.13, 0.1, 0.1, 0.08])


DEVICES = (["mobile", "desktop", "tablet"], [0.6, 0.32, 0.08])


WEEKDAY_FACTOR = np.array([0.95, 0.9, 0.92, 0.97, 1.08, 1.22, 1.16])  # Monday first


# Coupon codes sent by past campaigns and how strongly each moves a responsive user.
CAMPAIGN_COUPONS = {"WELCOME10": 1.0, "SAVE15": 1.2, "FREESHIP": 0.8, "EUR5OFF": 0.9}


CAMPAIGN_EVERY_DAYS = 14


COUPON_VALID_DAYS = 7


# The window of the coupon-effect truth: P(a purchase within 7 days), with and without a coupon.
UPLIFT_HORIZON_DAYS = 7


N_PRODUCTS = 600


# Coupon segments, drawn by a multinomial logit in (price_sensitivity - 0.5): persuadables lean
# price-sensitive, sleeping dogs price-insensitive, the other two do not depend on it. The intercepts
# give shares of about 35/30/25/10% under Beta(2, 2) price sensitivity; with a slope of 10 price
# sensitivity alone ranks persuadables with an AUC of about 0.90 (noisy, no hard threshold).
SEGMENTS = ("persuadable", "sure_thing", "lost_cause", "sleeping_dog")


SEGMENT_INTERCEPT = np.array([0.0, 0.533, 0.351, -2.508])


SEGMENT_SLOPE = np.array([10.0, 0.0, 0.0, -10.0])


# Each segment's coupon-effect multiplier on a session's purchase probability, drawn uniform on (low, high):
# persuadables buy more with a coupon, sleeping dogs less, the others as they would (times the code's strength).
COUPON_EFFECT_RANGES = {
    "persuadable": (1.8, 3.0),
    "sure_thing": (1.0, 1.0),
    "lost_cause": (1.0, 1.0),
    "sleeping_dog": (0.3, 0.6),
}


# Drifts `ml simulate --shift NAME --shift-from DATE` can inject, recorded in the truth (shift.json):
# bargain_hunters: a new traffic source (a price-comparison site) brings, over the 14 days from the date, 40%
# more users, mostly on mobile, who visit three times as often and fill carts but rarely buy (purchase
# intent a fifth of the others' median), and are very price-sensitive. The models trained before meet
# browsing they have learnt to read as intent.
SHIFTS = {"bargain_hunters": {"extra_users": 0.4, "arrival_days": 14}}


@dataclass(frozen=True)
class ShopSpec:
    """What defines a simulated shop: the same spec always gives the same files."""

    seed: int = 42
    users: int = 20_000
    days: int = 180
    start: date = date(2026, 1, 1)
    # False: a placebo shop where every coupon leaves the purchase probability as it is.
    coupon_effects: bool = True
    # A drift to inject (SHIFTS), from shift_from on; None: the shop stays as it is.
    shift: str | None = None
    shift_from: date | None = None

    @property
    def end(self) -> date:
        """The last simulated day (inclusive)."""
        return self.start + timedelta(days=self.days - 1)

    def to_json(self) -> str:
        shift_from = self.shift_from and self.shift_from.isoformat()
        return json.dumps({**asdict(self), "start": self.start.isoformat(), "shift_from": shift_from})

    @classmethod
    def from_json(cls, text: str) -> ShopSpec:
        raw = json.loads(text)
        return cls(
            seed=raw["seed"],
            users=raw["users"],
            days=raw["days"],
            start=date.fromisoformat(raw["start"]),
            coupon_effects=bool(raw.get("coupon_effects", True)),  # files from before the option: True
            shift=raw.get("shift"),
            shift_from=raw.get("shift_from") and date.fromisoformat(raw["shift_from"]),
        )

    def __post_init__(self) -> None:
        if self.shift is not None and self.shift not in SHIFTS:
            raise ValueError(f"unknown shift {self.shift!r}; the shifts: {', '.join(SHIFTS)}")
        if self.shift is not None and not (self.shift_from and self.start < self.shift_from):
            raise ValueError(f"shift {self.shift} needs a shift_from date after the start {self.start}")


def coupon_strengths(spec: ShopSpec) -> dict[str, float]:
    """How strongly each campaign code moves a responsive user: all 1.0 in a shop whose coupons do nothing."""
    return dict(CAMPAIGN_COUPONS) if spec.coupon_effects else dict.fromkeys(CAMPAIGN_COUPONS, 1.0)


def make_products(rng: np.random.Generator) -> pd.DataFrame:
    category = rng.integers(0, len(CATEGORIES), N_PRODUCTS)
    base = np.array(CATEGORY_PRICE)[category]
    return pd.DataFrame(
        {
            "product_id": np.arange(1, N_PRODUCTS + 1, dtype="int64"),
            "category": np.array(CATEGORIES)[category],
            "brand": [f"brand_{b:02d}" for b in rng.integers(1, 41, N_PRODUCTS)],
            "price": np.round(base * rng.lognormal(0.0, 0.45, N_PRODUCTS), 2),
        }
    )


def make_users(spec: ShopSpec, rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (public user table, hidden traits). About 55% exist before the start, the rest arrive."""
    n = spec.users
    existing = rng.random(n) < 0.55
    signup_day = np.where(existing, rng.integers(-365, 0, n), rng.integers(0, spec.days, n))
    user_id = np.arange(1, n + 1, dtype="int64")
    users = public_users(spec, user_id, signup_day, DEVICES[1], rng)
    price_sensitivity = rng.beta(2, 2, n)
    segment, coupon_effect = coupon_response(price_sensitivity, rng)
    if not spec.coupon_effects:
        coupon_effect = np.ones(n)  # segments stay drawn (same users), but no coupon moves anyone
    traits = pd.DataFrame(
        {
            "user_id": user_id,
            "signup_day": signup_day,
            "visit_rate": np.clip(rng.lognormal(np.log(0.25), 0.8, n), 0.003, 2.0),
            # Engagement fades with tenure at a personal pace: visible in the activity trend.
            "engagement_decay": np.clip(rng.lognormal(np.log(0.002), 0.8, n), 0.0001, 0.05),
            "purchase_intent": 1 / (1 + np.exp(-rng.normal(-3.8, 1.3, n))),
            "price_sensitivity": price_sensitivity,
            "coupon_segment": segment,
            "coupon_effect": coupon_effect,
            # Leaving for good: sudden and unseen, so kept rare; most decline shows as fading engagement.
            "churn_hazard": np.clip(rng.lognormal(np.log(0.0008), 0.8, n), 0.0001, 0.03),
        }
    )
    tastes = rng.dirichlet(np.full(len(CATEGORIES), 0.4), n)
    for i, name in enumerate(CATEGORIES):
        traits[f"taste_{name}"] = tastes[:, i]
    if spec.shift == "bargain_hunters":
        # Drawn from a generator of their own after everyone else: the shop's other users are the same.
        extra_users, extra_traits = bargain_hunters(spec, traits, np.random.default_rng([spec.seed, 1]))
        users = pd.concat([users, extra_users], ignore_index=True)
        traits = pd.concat([traits, extra_traits], ignore_index=True)
    return users, traits


def bargain_hunters(
    spec: ShopSpec, traits: pd.DataFrame, rng: np.random.Generator
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The cohort the bargain_hunters shift brings (SHIFTS): their public rows and hidden traits."""
    shift = SHIFTS["bargain_hunters"]
    n, first_id = int(len(traits) * shift["extra_users"]), len(traits) + 1
    first_day = (spec.shift_from - spec.start).days
    signup_day = rng.integers(first_day, first_day + shift["arrival_days"], n)
    user_id = np.arange(first_id, first_id + n, dtype="int64")
    users = public_users(spec, user_id, signup_day, [0.85, 0.1, 0.05], rng)  # mostly mobile
    price_sensitivity = rng.beta(8, 2, n)
    segment, effect = coupon_response(price_sensitivity, rng)
    extra = pd.DataFrame(
        {
            "user_id": user_id,
            "signup_day": signup_day,
            "visit_rate": np.clip(3 * rng.lognormal(np.log(0.25), 0.8, n), 0.003, 2.0),
            "engagement_decay": np.clip(rng.lognormal(np.log(0.002), 0.8, n), 0.0001, 0.05),
            "purchase_intent": np.full(n, traits["purchase_intent"].median() / 5),
            "price_sensitivity": price_sensitivity,
            "coupon_segment": segment,
            "coupon_effect": effect if spec.coupon_effects else np.ones(n),
            "churn_hazard": np.clip(rng.lognormal(np.log(0.0008), 0.8, n), 0.0001, 0.03),
        }
    )
    tastes = rng.dirichlet(np.full(len(CATEGORIES), 0.4), n)
    for i, name in enumerate(CATEGORIES):
        extra[f"taste_{name}"] = tastes[:, i]
    return users, extra


def public_users(spec: ShopSpec, user_id: np.ndarray, signup_day: np.ndarray, device_shares, rng) -> pd.DataFrame:
    """The rows of the shop's user export: sign-up time, country, device, consent and contact data."""
    n = len(user_id)
    signup_at = [
        datetime.combine(spec.start + timedelta(days=int(d)), time()) + timedelta(seconds=int(s))
        for d, s in zip(signup_day, rng.integers(0, 86_400, n), strict=True)
    ]
    return pd.DataFrame(
        {
            "user_id": user_id,
            "signup_at": pd.to_datetime(signup_at),
            "country": rng.choice(COUNTRIES[0], n, p=COUNTRIES[1]),
            "device": rng.choice(DEVICES[0], n, p=device_shares),
            "marketing_consent": rng.random(n) < 0.7,
            "email": [f"user{u}@example.com" for u in user_id],
            "phone": [f"+49{digits}" for digits in rng.integers(10**9, 10**10, n)],
        }
    )


def coupon_response(price_sensitivity: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
    """Each user's hidden coupon segment and the multiplier a coupon puts on their purchase chance."""
    n = len(price_sensitivity)
    segment = np.array(SEGMENTS)[_draw_segments(price_sensitivity, rng)]
    effect = np.select(
        [segment == "persuadable", segment == "sleeping_dog"],
        [rng.uniform(*COUPON_EFFECT_RANGES["persuadable"], n), rng.uniform(*COUPON_EFFECT_RANGES["sleeping_dog"], n)],
        1.0,
    )
    return segment, effect


def segment_probabilities(price_sensitivity: np.ndarray) -> np.ndarray:
    """P(each of SEGMENTS | price sensitivity), one row per user: a multinomial logit (see SEGMENT_SLOPE)."""
    logits = SEGMENT_INTERCEPT + np.outer(np.asarray(price_sensitivity, float) - 0.5, SEGMENT_SLOPE)
    weights = np.exp(logits - logits.max(axis=1, keepdims=True))
    return weights / weights.sum(axis=1, keepdims=True)


def _draw_segments(price_sensitivity: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Index into SEGMENTS per user, drawn from segment_probabilities."""
    cumulative = np.cumsum(segment_probabilities(price_sensitivity), axis=1)
    return np.minimum((rng.random((len(price_sensitivity), 1)) > cumulative).sum(axis=1), len(SEGMENTS) - 1)
